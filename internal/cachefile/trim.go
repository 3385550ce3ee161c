package cachefile

import (
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Limits bound the cache. Entries in use, and entries used within Grace,
// are never evicted, whatever the limits.
type Limits struct {
	// MaxBytes: beyond it, the least recently used entries go first.
	MaxBytes int64
	// MaxAge: an entry not used for longer goes.
	MaxAge time.Duration
	// Grace protects what was just written or used (a process between
	// PrepareBoot and its first boot holds its entries anyway).
	Grace time.Duration
}

// DefaultLimits are applied after every new entry. A Debian kernel's
// vmlinux is ~66 MB and an initramfs ~10-13 MB, and every new vmlab build
// makes a new initramfs: 1 GiB keeps the kernel and ~70 builds.
var DefaultLimits = Limits{MaxBytes: 1 << 30, MaxAge: 30 * 24 * time.Hour, Grace: 10 * time.Minute}

// Entry is a file in the cache.
type Entry struct {
	Name  string
	Size  int64
	Used  time.Time // last use (or write)
	InUse bool      // a live process holds it
	Temp  bool      // being written, or left by a writer that died
}

// List returns the cache's entries, least recently used first.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		e := Entry{Name: de.Name(), Size: fi.Size(), Used: fi.ModTime(), Temp: isTemp(de.Name())}
		e.InUse = InUse(filepath.Join(dir, e.Name))
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Used.Compare(b.Used) })
	return out, nil
}

// InUse says whether a live process holds a lock on path (the shared lock
// a user of a cached file takes).
func InUse(path string) bool {
	f, _, err := OpenRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
}

// Trim evicts entries beyond l and returns them. Errors other than reading
// the directory are skipped: an entry that cannot be removed stays.
func Trim(dir string, l Limits) ([]Entry, error) {
	entries, err := List(dir)
	if err != nil {
		return nil, err
	}
	return l.evictEach(entries, func(e Entry) bool { return evict(filepath.Join(dir, e.Name)) }), nil
}

// evictEach goes through entries, least recently used first, and calls
// remove on each that l evicts (until the rest fit), returning those it
// removed. An entry in use or younger than the grace period stays; a
// temporary one nobody holds goes (its writer died: Write locks it at
// once); the others go while the total is over the bound, or when they are
// older than the age bound.
func (l Limits) evictEach(entries []Entry, remove func(Entry) bool) []Entry {
	total := Total(entries)
	now := time.Now()
	var removed []Entry
	for _, e := range entries {
		age := now.Sub(e.Used)
		switch {
		case e.InUse || age < l.Grace:
			continue
		case e.Temp:
		case total <= l.MaxBytes && age <= l.MaxAge:
			continue
		}
		if remove(e) {
			total -= e.Size
			removed = append(removed, e)
		}
	}
	return removed
}

// Clean evicts every entry not in use, and returns them.
func Clean(dir string) ([]Entry, error) {
	return Trim(dir, Limits{MaxBytes: 0, MaxAge: 0, Grace: 0})
}

// evict removes path unless a process holds it, under an exclusive lock
// so that nobody takes it meanwhile: a process that opened it and waits for
// its shared lock sees, once it has it, that the file is gone (see use).
func evict(path string) bool {
	f, _, err := OpenRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false
	}
	return os.Remove(path) == nil
}

// Total sums the entries' sizes.
func Total(entries []Entry) int64 {
	var n int64
	for _, e := range entries {
		n += e.Size
	}
	return n
}
