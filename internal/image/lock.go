package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The store's locks, all flock(2), so that a process that dies releases
// them with its descriptors:
//   - .KEY.lock, exclusive for the build of KEY: one build per key across
//     processes; whoever waited for it then finds the image cached;
//   - .root-* (a build's root directory), shared while the build lives:
//     a sweep removes only roots nobody holds, the leftovers of a build
//     that died;
//   - .sweep.lock, shared while a root is created and locked, exclusive
//     while a sweep runs, so that a sweep never sees a new root before its
//     build has locked it.

// lockPath is the build lock of key.
func lockPath(dir, key string) string { return filepath.Join(dir, "."+key+".lock") }

// lockKey takes the build lock of key, waiting (and saying so through
// waiting, once) while another process or goroutine builds it. ctx ends
// the wait. unlock removes the lock file, then releases it.
func lockKey(ctx context.Context, dir, key string, waiting func()) (unlock func(), err error) {
	path := lockPath(dir, key)
	said := false
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open build lock %s: %w", path, err)
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			if !said && waiting != nil {
				waiting()
				said = true
			}
			if err := flockCtx(ctx, f, unix.LOCK_EX); err != nil {
				return nil, fmt.Errorf("wait for the build lock %s: %w", path, err)
			}
		}
		// The holder before us removed the file as it unlocked it: the
		// lock on that file guards nothing; take the new one.
		if !sameFile(f, path) {
			f.Close()
			continue
		}
		return func() {
			os.Remove(path)
			f.Close()
		}, nil
	}
}

// flockCtx takes a blocking flock on f unless ctx ends first. The flock
// call cannot be interrupted: on ctx's end it goes on in the background,
// and f is closed (the lock released) as soon as it returns.
func flockCtx(ctx context.Context, f *os.File, how int) error {
	done := make(chan error, 1)
	fd := int(f.Fd())
	go func() { done <- unix.Flock(fd, how) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
		}
		return err
	case <-ctx.Done():
		go func() {
			<-done
			f.Close()
		}()
		return ctx.Err()
	}
}

// sameFile says whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// sweepLock opens the store's sweep lock and takes it as how (LOCK_SH or
// LOCK_EX, possibly with LOCK_NB).
// A trim may evict the file (it is one more entry of the cache, unused
// for 30 days): a lock on an evicted file is taken again on the new one.
func sweepLock(dir string, how int) (*os.File, error) {
	path := filepath.Join(dir, ".sweep.lock")
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), how); err != nil {
			f.Close()
			return nil, err
		}
		if sameFile(f, path) {
			return f, nil
		}
		f.Close()
	}
}

// rootMode is the mode of an image's "/".
const rootMode = 0o755

// newRoot makes an empty directory for a root file system in dir, the
// image cache, which it first makes the caller's alone (privateDir). The
// root becomes the image's "/", so it gets the mode a root has, 0755; it
// lives in a 0700 directory of its own (.root-*), so that its set-id
// files (sudo, ping, kept set-id for the guest) are out of other host
// users' reach. The private directory is locked (shared) until release:
// the sweep leaves it alone while it is held.
func newRoot(dir string) (root string, release func(), err error) {
	if err := privateDir(dir); err != nil {
		return "", nil, err
	}
	sw, err := sweepLock(dir, unix.LOCK_SH)
	if err != nil {
		return "", nil, fmt.Errorf("lock image cache %s: %w", dir, err)
	}
	defer sw.Close()
	private, err := os.MkdirTemp(dir, rootPrefix)
	if err != nil {
		return "", nil, err
	}
	f, err := os.Open(private)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH)
	}
	if err != nil {
		os.Remove(private)
		return "", nil, fmt.Errorf("lock %s: %w", private, err)
	}
	root = filepath.Join(private, "root")
	if err := os.Mkdir(root, rootMode); err != nil {
		f.Close()
		os.Remove(private)
		return "", nil, err
	}
	return root, func() { f.Close() }, nil
}

// createTemp creates a temporary file in dir as os.CreateTemp does and
// takes a shared lock on it before the sweep may see it.
func createTemp(dir, pattern string) (*os.File, error) {
	sw, err := sweepLock(dir, unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("lock image cache %s: %w", dir, err)
	}
	defer sw.Close()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// leftover says whether name is build work a sweep considers: a root
// directory, a partial image file or record, or a build lock.
func leftover(name string) bool {
	return strings.HasPrefix(name, rootPrefix) ||
		strings.HasPrefix(name, ".") && strings.Contains(name, ext+".tmp-") ||
		strings.HasPrefix(name, ".") && strings.Contains(name, ".json.tmp-") ||
		strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".lock") && name != ".sweep.lock"
}

// sweep removes what builds that died left in dir (roots, partial image
// files, build locks), each only when nobody holds its lock, and the
// records whose image file is gone (a record is written after its image
// file, and removed after it), and returns
// the bytes that live builds' roots take (which the bound counts). A
// sweep already running elsewhere makes this one a no-op.
func (s *Store) sweep(dir string) (live int64) {
	sw, err := sweepLock(dir, unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return liveWork(dir)
	}
	defer sw.Close()
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	for _, de := range des {
		name := de.Name()
		if key, ok := strings.CutSuffix(name, ".json"); ok && !strings.HasPrefix(name, ".") {
			if _, err := os.Lstat(filepath.Join(dir, key+ext)); errors.Is(err, os.ErrNotExist) {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if !leftover(name) {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close()
			if de.IsDir() { // files are the cache's entries: Trim counts them
				live += duSize(path)
			}
			continue
		}
		if de.IsDir() {
			s.removeRoot(path)
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				s.logf("image cache: removed %s, left by a build that died", name)
			}
		} else {
			os.Remove(path)
		}
		f.Close()
	}
	return live
}

// liveWork sums the build roots in dir, for a bound computed while
// another process sweeps (each then is either live or about to go).
func liveWork(dir string) int64 {
	des, _ := os.ReadDir(dir)
	var n int64
	for _, de := range des {
		if de.IsDir() && leftover(de.Name()) {
			n += duSize(filepath.Join(dir, de.Name()))
		}
	}
	return n
}

// duSize is the size of the files under path (path itself for a file),
// without crossing into other file systems (a build's mounted /proc).
func duSize(path string) int64 {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil {
		return 0
	}
	dev := st.Dev
	var n int64
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if st.Dev != dev {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}
