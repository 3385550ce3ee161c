package shard

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// TimingsFile is the timings file's name in vmlab's cache directory.
const TimingsFile = "timings.json"

// The timings file stays bounded: an entry not measured for MaxAge is
// dropped (its test was renamed or removed), and beyond MaxEntries the
// least recently measured go first. 10,000 entries are about 1.5 MB.
const (
	MaxAge     = 90 * 24 * time.Hour
	MaxEntries = 10000
)

// timingsVersion is the version of the timings file's format; a file of
// another version reads as empty, and is replaced at the next update.
const timingsVersion = 1

// Timing is one test's last measured duration.
type Timing struct {
	ID       string    `json:"id"`         // the test's ID when measured, for people reading the file
	Duration float64   `json:"duration_s"` // seconds
	Seen     time.Time `json:"seen"`       // when it was measured
}

// Timings are the tests' last measured durations, by Key.
type Timings map[string]Timing

type timingsJSON struct {
	Version int     `json:"version"`
	Tests   Timings `json:"tests"`
}

// DefaultTimingsPath is $XDG_CACHE_HOME/vmlab/timings.json, or
// ~/.cache/vmlab/timings.json, beside vmlab's other caches.
func DefaultTimingsPath() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory for the timings file (or pass -timings FILE): %w", err)
	}
	return filepath.Join(base, "vmlab", TimingsFile), nil
}

// Key is a test's key in the timings file: the file's path relative to
// the working directory, slash-separated, then ":" and the test's name.
// A checkout at another absolute path, run from its top as CI runners
// do, gets the same keys.
func Key(file, test string) string {
	if filepath.IsAbs(file) {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, file); err == nil {
				file = rel
			}
		}
	}
	return filepath.ToSlash(filepath.Clean(file)) + ":" + test
}

// Duration returns the test's last measured duration; 0 when unknown.
func (t Timings) Duration(key string) time.Duration {
	e, ok := t[key]
	if !ok || e.Duration <= 0 {
		return 0
	}
	return time.Duration(e.Duration * float64(time.Second))
}

// ReadTimings reads the timings file at path. A missing file, or one of
// another format version, is no timings; a file that does not parse is
// an error naming it.
func ReadTimings(path string) (Timings, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Timings{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the timings file %s: %w", path, err)
	}
	var f timingsJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("reading the timings file %s: %w (remove it, or pass another with -timings)", path, err)
	}
	if f.Version != timingsVersion || f.Tests == nil {
		return Timings{}, nil
	}
	return f.Tests, nil
}

// Record updates the timings file at path with tests' durations, measured
// at now. It holds an exclusive lock on path.lock while it reads, updates
// and replaces the file, so that runs sharing the file (two shards on one
// host, tests ending at once) do not lose each other's entries. The file
// is written whole (0600) and renamed into place, and bounded (MaxAge,
// MaxEntries). A file that does not parse is replaced.
func Record(path string, tests map[string]Timing, now time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("updating the timings file %s: %w", path, err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("updating the timings file %s: %w", path, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking the timings file %s: %w", path, err)
	}
	t, err := ReadTimings(path)
	if err != nil {
		t = Timings{} // written whole, so only a person's edit breaks it: replace it
	}
	for k, e := range tests {
		t[k] = e
	}
	return WriteTimings(path, t, now)
}

// WriteTimings writes t, bounded as of now (MaxAge, MaxEntries), as the
// timings file at path (0600), replacing what is there; written whole
// and renamed into place, without Record's lock: for a file no other
// process updates (the one vmlab report merge writes).
func WriteTimings(path string, t Timings, now time.Time) error {
	t = maps.Clone(t)
	if t == nil {
		t = Timings{}
	}
	t.trim(now)
	data, err := json.MarshalIndent(timingsJSON{Version: timingsVersion, Tests: t}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("writing the timings file %s: %w", path, err)
	}
	return nil
}

// trim drops the entries older than MaxAge, then the least recently seen
// beyond MaxEntries (the key decides among equals).
func (t Timings) trim(now time.Time) {
	for k, e := range t {
		if now.Sub(e.Seen) > MaxAge {
			delete(t, k)
		}
	}
	if len(t) <= MaxEntries {
		return
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(t[b].Seen.Compare(t[a].Seen), cmp.Compare(a, b))
	})
	for _, k := range keys[MaxEntries:] {
		delete(t, k)
	}
}

// writeFile writes data as path (0600) through a temporary file beside
// it, synced and renamed into place: a reader sees the old file or the
// new one, never a part.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
