package cachefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDirs checks directory entries: one held with UseDir is in use and
// stays through a clean, a temporary one goes once past the grace, a
// trim beyond the bound evicts the least recently used first, and UseDir
// of an evicted entry says it does not exist.
func TestDirs(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		os.MkdirAll(p, 0o700)
		if err := os.WriteFile(filepath.Join(p, "ram"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		os.Chtimes(p, when, when)
	}
	mk("old", 3*time.Hour)
	mk("new", time.Hour)
	mk(".tmp-x-1", time.Minute)
	held, err := UseDir(filepath.Join(dir, "new"), "ram")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ListDirs(dir, "ram")
	if err != nil || len(entries) != 3 {
		t.Fatalf("got %+v, %v; want 3 entries", entries, err)
	}
	if last := entries[2]; last.Name != "new" || !last.InUse || last.Size < 1<<20 {
		t.Errorf("got %+v last, want new, just used, in use, its 1 MiB", last)
	}
	// Beyond 1.5 MiB: the least recently used one not in use goes; the
	// temporary one is within its grace.
	removed, err := TrimDirs(dir, "ram", Limits{MaxBytes: 3 << 19, MaxAge: 24 * time.Hour, Grace: 10 * time.Minute})
	if err != nil || len(removed) != 1 || removed[0].Name != "old" {
		t.Errorf("trim: removed %+v, %v; want old", removed, err)
	}
	removed, err = CleanDirs(dir, "ram")
	if err != nil || len(removed) != 1 || removed[0].Name != ".tmp-x-1" {
		t.Errorf("clean: removed %+v, %v; want the temporary one only", removed, err)
	}
	held.Close()
	if removed, _ := CleanDirs(dir, "ram"); len(removed) != 1 {
		t.Errorf("clean after release: removed %+v, want new", removed)
	}
	if _, err := UseDir(filepath.Join(dir, "new"), "ram"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UseDir of an evicted entry: got %v, want ErrNotExist", err)
	}
}
