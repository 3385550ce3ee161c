package resultcache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// logs collects a Cache's Logf lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestLocalStoreLookup: a stored entry is found; one whose recorded read
// changed is not; a corrupt one is ignored, and the next Store overwrites
// it.
func TestLocalStoreLookup(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	data := filepath.Join(base, "data.txt")
	os.WriteFile(data, []byte("x"), 0o644)
	var l logs
	c := &Cache{Local: &Local{Dir: t.TempDir()}, Logf: l.logf}
	key := Bytes([]byte("test"))
	if _, ok := c.Lookup(ctx, key, base); ok {
		t.Fatal("Lookup of an empty cache: got a hit")
	}
	c.Store(ctx, sampleEntry(key)) // reads data.txt = "x", relative to base
	got, ok := c.Lookup(ctx, key, base)
	if !ok || got.Host != "runner-1" {
		t.Fatalf("Lookup after Store: got %+v, %v; want the entry", got, ok)
	}
	os.WriteFile(data, []byte("y"), 0o644)
	if _, ok := c.Lookup(ctx, key, base); ok {
		t.Errorf("Lookup after the read file changed: got a hit, want a miss")
	}
	os.WriteFile(data, []byte("x"), 0o644)

	p := filepath.Join(c.Local.Dir, key+".json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), "runner-1", "runner-X", 1)), 0o644)
	if _, ok := c.Lookup(ctx, key, base); ok {
		t.Errorf("Lookup of a corrupt entry: got a hit, want a miss")
	}
	if lines := l.get(); len(lines) != 1 || !strings.Contains(lines[0], "checksum") {
		t.Errorf("log after a corrupt entry: got %q, want one line about its checksum", lines)
	}
	c.Store(ctx, sampleEntry(key))
	if _, ok := c.Lookup(ctx, key, base); !ok {
		t.Errorf("Lookup after Store overwrote the corrupt entry: got a miss")
	}
}
