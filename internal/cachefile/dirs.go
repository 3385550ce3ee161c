package cachefile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Directory entries: a cache whose entries are directories (machine
// snapshots: a header, a state file and a memory file), each with one
// file, its lock file, that a user holds a shared flock on while it uses
// the entry (a restored machine for as long as its QEMU maps the memory
// file) and that an eviction locks exclusively before it removes the
// directory. An entry's last use is its directory's mtime (Touch).
//
// Directories whose name starts with "." are temporary (being written, or
// set aside as bad): they go as soon as nobody holds their lock and they
// are older than the grace.

// ListDirs returns dir's directory entries, least recently used first.
// Size is the blocks its files take on disk (a memory file is sparse).
func ListDirs(dir, lockFile string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		p := filepath.Join(dir, de.Name())
		e := Entry{Name: de.Name(), Size: diskUsage(p), Used: fi.ModTime(), Temp: strings.HasPrefix(de.Name(), ".")}
		e.InUse = InUse(filepath.Join(p, lockFile))
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Used.Compare(b.Used) })
	return out, nil
}

// diskUsage is what the files right under dir take on disk.
func diskUsage(dir string) int64 {
	des, _ := os.ReadDir(dir)
	var n int64
	for _, de := range des {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(dir, de.Name()), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// TrimDirs evicts dir's directory entries beyond l, as Trim does files,
// and returns them.
func TrimDirs(dir, lockFile string, l Limits) ([]Entry, error) {
	entries, err := ListDirs(dir, lockFile)
	if err != nil {
		return nil, err
	}
	return l.evictEach(entries, func(e Entry) bool { return evictDir(filepath.Join(dir, e.Name), lockFile) }), nil
}

// CleanDirs evicts every directory entry not in use, and returns them.
func CleanDirs(dir, lockFile string) ([]Entry, error) {
	return TrimDirs(dir, lockFile, Limits{})
}

// evictDir removes the directory p unless a process holds its lock file,
// under an exclusive lock on it: a user that opened the lock file and
// waits for its shared lock sees, once it has it, that it is gone
// (UseDir). A directory without its lock file is removed.
func evictDir(p, lockFile string) bool {
	f, _, err := OpenRegular(filepath.Join(p, lockFile))
	if err == nil {
		defer f.Close()
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return false
		}
	}
	return os.RemoveAll(p) == nil
}

// UseDir marks the directory entry p in use: it opens p's lock file and
// holds a shared flock on it until the caller closes the file it returns,
// and touches p. It returns os.ErrNotExist when there is no such entry
// (or an eviction removed it while UseDir waited for the lock).
func UseDir(p, lockFile string) (*os.File, error) {
	path := filepath.Join(p, lockFile)
	f, _, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	// Blocks only while an eviction holds the entry, a few milliseconds.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	if !same(f, path) {
		f.Close()
		return nil, os.ErrNotExist
	}
	now := time.Now()
	os.Chtimes(p, now, now)
	return f, nil
}
