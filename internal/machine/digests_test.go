package machine

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDigestStore: a sum is kept for the file as it was, not for a file
// changed since (its times differ), not for one written too recently to
// tell, and the entries of changed or gone files are dropped.
func TestDigestStore(t *testing.T) {
	dir := t.TempDir()
	store := snapshotDigests(dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("content"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(p string) string {
		s, err := fileStat(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sa := stat(a)
	store.put(a, sa, "sum-a")
	if _, ok := store.get(a, sa); ok {
		t.Error("kept the sum of a file written just now")
	}
	defer func(d time.Duration) { digestSettle = d }(digestSettle)
	digestSettle = 0
	store.put(a, sa, "sum-a")
	store.put(b, stat(b), "sum-b")
	if sum, ok := store.get(a, sa); !ok || sum != "sum-a" {
		t.Errorf("get: %q, %v", sum, ok)
	}
	// Another modification time: not the file that was hashed.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(a, old, old); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.get(a, stat(a)); ok {
		t.Error("a changed file's sum was kept")
	}
	os.Remove(b)
	c := filepath.Join(dir, "c")
	os.WriteFile(c, nil, 0o644)
	store.put(c, stat(c), "sum-c")
	if m := store.load(); len(m) != 1 || m[c].SHA256 != "sum-c" {
		t.Errorf("after the others changed or went: %v", m)
	}
}

// TestDigestStoreNotAFile: a store that is a FIFO, or a link to a device
// that never ends, reads as empty at once (before, a FIFO's open blocked
// the run for ever and /dev/zero was read without end).
func TestDigestStoreNotAFile(t *testing.T) {
	for name, mk := range map[string]func(string) error{
		"fifo": func(p string) error { return unix.Mkfifo(p, 0o600) },
		"link": func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		dir := t.TempDir()
		store := snapshotDigests(dir)
		if err := mk(string(store)); err != nil {
			t.Fatal(err)
		}
		if m := store.load(); len(m) != 0 {
			t.Errorf("%s: loaded %v", name, m)
		}
	}
}

// forgetDigests drops this process's sums and verdicts, as a new process
// starts without them.
func forgetDigests() {
	sparseChecks.Lock()
	sparseChecks.m = nil
	sparseChecks.Unlock()
	fileDigests.Lock()
	fileDigests.m = nil
	fileDigests.Unlock()
}

// TestDigestStoreUsed: a process that finds a file's sum in the store
// does not hash the file again; one whose file changed since does, and
// keeps the new sum.
func TestDigestStoreUsed(t *testing.T) {
	defer func(d time.Duration) { digestSettle = d }(digestSettle)
	digestSettle = 0
	defer forgetDigests()
	dir := t.TempDir()
	store := snapshotDigests(dir)
	ram := filepath.Join(dir, "memory")
	if err := os.WriteFile(ram, make([]byte, 3*memPage), 0o644); err != nil {
		t.Fatal(err)
	}
	real, _, err := sumSparse(ram)
	if err != nil {
		t.Fatal(err)
	}
	// A sum no hash of the file gives: only the store can say it.
	st, _ := fileStat(ram)
	store.put(ram, st, "kept")
	forgetDigests()
	if err := checkSparse(store, ram, "kept", "memory file"); err != nil {
		t.Errorf("the memory file's kept sum was not used: %v", err)
	}
	if sum, err := fileDigest(store, ram); err != nil || sum != "kept" {
		t.Errorf("the file's kept sum was not used: %q, %v", sum, err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(ram, old, old); err != nil {
		t.Fatal(err)
	}
	forgetDigests()
	if err := checkSparse(store, ram, real, "memory file"); err != nil {
		t.Errorf("a changed file was not hashed again: %v", err)
	}
	st, _ = fileStat(ram)
	if sum, ok := store.get(ram, st); !ok || sum != real {
		t.Errorf("its new sum was not kept: %q, %v", sum, ok)
	}
}

// TestBootDigest: the cache's kernels and initramfs archives are known by
// the sum in their names (they are touched at every use, so their own sums
// could not be kept); a file of the same name elsewhere is hashed.
func TestBootDigest(t *testing.T) {
	cache, elsewhere := t.TempDir(), t.TempDir()
	name := "initramfs-" + strings.Repeat("ab", 32) + ".cpio"
	for _, d := range []string{cache, elsewhere} {
		if err := os.WriteFile(filepath.Join(d, name), []byte("archive"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := &Boot{cache: cache}
	if got, err := b.digest(filepath.Join(cache, name)); err != nil || got != "named "+strings.Repeat("ab", 32) {
		t.Errorf("in the cache: %q, %v", got, err)
	}
	want := "sha256 " + fmt.Sprintf("%x", sha256.Sum256([]byte("archive")))
	if got, err := b.digest(filepath.Join(elsewhere, name)); err != nil || got != want {
		t.Errorf("elsewhere: %q, %v; want %q", got, err, want)
	}
}
