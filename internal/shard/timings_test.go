package shard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKeyAcrossCheckouts: a test's key is the same in two checkouts at
// other absolute paths, named by absolute or relative path from the
// checkout's top.
func TestKeyAcrossCheckouts(t *testing.T) {
	var keys []string
	for _, top := range []string{t.TempDir(), filepath.Join(t.TempDir(), "deeper", "checkout")} {
		if err := os.MkdirAll(filepath.Join(top, "examples"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Chdir(top)
		keys = append(keys, Key(filepath.Join(top, "examples", "nfs.star"), "test"), Key("examples/nfs.star", "test"), Key("./examples//nfs.star", "test"))
	}
	for _, k := range keys {
		if k != "examples/nfs.star:test" {
			t.Errorf("got key %q, want examples/nfs.star:test", k)
		}
	}
}

func TestRecordAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "timings.json")
	got, err := ReadTimings(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("a missing file: got %v, %v; want no timings", got, err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := Record(path, map[string]Timing{"a.star:test": {ID: "a.test", Duration: 12.5, Seen: now}}, now); err != nil {
		t.Fatal(err)
	}
	if err := Record(path, map[string]Timing{"b.star:test": {ID: "b.test", Duration: 3, Seen: now}}, now); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("timings file: %v, mode %v; want 0600", err, fi.Mode())
	}
	got, err = ReadTimings(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Duration("a.star:test"); d != 12500*time.Millisecond {
		t.Errorf("a: got %v, want 12.5s", d)
	}
	if d := got.Duration("b.star:test"); d != 3*time.Second {
		t.Errorf("b: got %v, want 3s", d)
	}
	if d := got.Duration("c.star:test"); d != 0 {
		t.Errorf("an unknown test: got %v, want 0", d)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("a temporary file is left: %s", e.Name())
		}
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTimings(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "-timings") {
		t.Errorf("a broken file: got %v, want an error naming it and -timings", err)
	}
}

// TestRecordBounded: entries not measured for 90 days go, and beyond
// MaxEntries the least recently measured: of MaxEntries+2, one too old
// and one too many go.
func TestRecordBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timings.json")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	batch := map[string]Timing{
		"old.star:test":    {Duration: 1, Seen: now.Add(-MaxAge - time.Hour)},
		"recent.star:test": {Duration: 1, Seen: now},
	}
	for i := range MaxEntries {
		// The first 5 are the least recent.
		batch[fmt.Sprintf("many.star:test_%05d", i)] = Timing{Duration: 1, Seen: now.Add(-time.Hour + time.Duration(i)*time.Millisecond)}
	}
	if err := Record(path, batch, now); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTimings(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxEntries {
		t.Errorf("got %d entries, want %d", len(got), MaxEntries)
	}
	if _, ok := got["old.star:test"]; ok {
		t.Errorf("an entry older than %v is kept", MaxAge)
	}
	if _, ok := got["recent.star:test"]; !ok {
		t.Errorf("the most recent entry was dropped")
	}
	if _, ok := got["many.star:test_00000"]; ok {
		t.Errorf("the least recent entry is kept beyond %d", MaxEntries)
	}
	if _, ok := got["many.star:test_00001"]; !ok {
		t.Errorf("the second least recent entry was dropped: one too many went")
	}
}

// TestRecordConcurrent: tests ending at once, in one process or two
// shards on one host, each get their entry: none is lost to another's
// write.
func TestRecordConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timings.json")
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			errs <- Record(path, map[string]Timing{fmt.Sprintf("t.star:test_%d", i): {Duration: 1, Seen: now}}, now)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadTimings(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 {
		t.Errorf("got %d entries after 40 concurrent records, want 40", len(got))
	}
}
