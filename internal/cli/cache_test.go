package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/cachefile"
)

func TestCacheCommand(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"vmlinux-a": 3 << 20, "initramfs-b.cpio": 1 << 20} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshots (docs/snapshots.md): one, one a killed run left half
	// taken, and the lock file of one evicted. Before the fix `vmlab
	// cache` showed none of them and clean left them.
	snaps := filepath.Join(dir, "snapshots")
	for _, d := range []string{"0123abcd", ".tmp-4567-x"} {
		os.MkdirAll(filepath.Join(snaps, d), 0o700)
		f, err := os.Create(filepath.Join(snaps, d, "ram"))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(make([]byte, 2<<20))
		f.Close()
	}
	os.WriteFile(filepath.Join(snaps, "89ef.lock"), nil, 0o600)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each in stdout
		stderr string
		left   int // entries in the cache afterwards
	}{
		{"list", []string{"cache", "-dir", dir}, exitOK,
			[]string{"8.0 MiB in 4 entries", "bound: 1.0 GiB, and 30 days unused", "snapshots: 2.0 GiB, and 7 days",
				"3.0 MiB", "vmlinux-a", "initramfs-b.cpio", "snapshots/0123abcd", "snapshots/.tmp-4567-x"}, "", 3},
		{"bad action", []string{"cache", "shred", "-dir", dir}, exitUsage, nil, "usage: vmlab cache [list|clean]", 3},
		{"clean", []string{"cache", "clean", "-dir", dir}, exitOK, []string{"removed 4 entries, 8.0 MiB, from " + dir}, "", 1},
		{"list empty", []string{"cache", "list", "-dir", dir}, exitOK, []string{"0.0 MiB in 0 entries"}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout %q: want %q in it", stdout, s)
				}
			}
			if des, _ := os.ReadDir(dir); len(des) != tt.left {
				t.Errorf("got %d entries left, want %d", len(des), tt.left)
			}
			if des, _ := os.ReadDir(snaps); tt.left == 1 && len(des) != 0 {
				t.Errorf("got %d snapshot entries left after clean (an orphan lock?), want none", len(des))
			}
		})
	}
}

// TestCacheCleanKept: what clean leaves is counted as in use only when a
// running vmlab holds it. Before, every entry left was "in use", also one
// that could not be removed (found on purpose: another user's snapshot).
func TestCacheCleanKept(t *testing.T) {
	dir := t.TempDir()
	held := filepath.Join(dir, "vmlinux-held")
	if err := cachefile.UseBytes(held, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run("cache", "clean", "-dir", dir)
	if want := "kept 1 entries, 1.0 MiB: 1 in use by a running vmlab, 0 that could not be removed"; code != exitOK || !strings.Contains(stdout, want) {
		t.Errorf("got exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
}
