// Package cachefile owns vmlab's cache directory (~/.cache/vmlab: the
// unpacked vmlinux, initramfs archives, the KVM verdict): how an entry is
// written (whole or not at all, so a reader never trusts a partial file),
// how a process marks the entries it uses, and how the cache is bounded
// (trim.go).
//
// An entry in use is one a live process got from Use: the process holds a
// shared flock on it until it exits (QEMU reads the kernel and initramfs at
// every boot, so a test process needs them for its whole life), and its
// mtime says when it was last used. Eviction takes an exclusive lock first,
// so it never removes an entry in use. Entries that are directories
// (machine snapshots) are bounded the same way, each locked through one
// of its files (dirs.go).
package cachefile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// held are the entries this process uses, each with its locked descriptor.
// One descriptor per entry, kept until the process exits: a process uses
// two or three entries.
var held struct {
	sync.Mutex
	files map[string]*os.File
}

// Use makes sure path is in the cache, writing it through write when it is
// not (as Write does), and marks it in use by this process. When it wrote
// the entry, it trims the cache to DefaultLimits: the cache grows only here.
func Use(path string, write func(io.Writer) error) error {
	wrote := false
	// A `vmlab cache clean` may remove the entry between its rename and
	// our lock: then it is written again.
	for range 3 {
		ok, err := use(path)
		if err != nil {
			return err
		}
		if ok {
			if wrote {
				Trim(filepath.Dir(path), DefaultLimits)
			}
			return nil
		}
		if err := Write(path, write); err != nil {
			return err
		}
		wrote = true
	}
	return fmt.Errorf("use cache entry %s: removed as soon as written, three times", path)
}

// UseBytes is Use for content already in memory.
func UseBytes(path string, data []byte) error {
	return Use(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// use marks path used and in use, if it exists: false when it does not (or
// was evicted while this process waited for its lock).
func use(path string) (bool, error) {
	held.Lock()
	defer held.Unlock()
	if f := held.files[path]; f != nil {
		if same(f, path) {
			touch(path)
			return true, nil
		}
		f.Close()
		delete(held.files, path)
	}
	f, _, err := OpenRegular(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("use cache entry %s: %w", path, err)
	}
	// Blocks only while an eviction holds the entry, a few milliseconds.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return false, fmt.Errorf("lock cache entry %s: %w", path, err)
	}
	if !same(f, path) {
		f.Close() // evicted before the lock was ours
		return false, nil
	}
	touch(path)
	if held.files == nil {
		held.files = make(map[string]*os.File)
	}
	held.files[path] = f
	return true, nil
}

// same says whether f is still the regular file at path.
func same(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && a.Mode().IsRegular() && os.SameFile(a, b)
}

// touch records a use in the entry's mtime (atime is unreliable under
// noatime and relatime).
func touch(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}

// WriteBytes writes data as the file at path, as Write does.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// tempInfix marks a file being written: "." + name + tempInfix + random.
const tempInfix = ".tmp-"

// Write writes a file through write into a temporary file beside path,
// syncs it and renames it into place, so that nobody, not even a concurrent
// writer of the same content, sees a partial file under the final name.
// The temporary file is locked while it is written, so a trim removes it
// only when its writer has died.
func Write(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	defer func() {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			err = fmt.Errorf("%w (the cache %s has no room left: free some, run `vmlab cache clean`, or set XDG_CACHE_HOME to a directory with room)", err, dir)
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempInfix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
		f.Close()
	}()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// Sync before the rename: otherwise a crash can leave an empty file
	// under the final name, which the cache would then trust.
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// isTemp says whether name is a file Write is (or was) writing.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix)
}
