package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCacheCommand(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"vmlinux-a": 3 << 20, "initramfs-b.cpio": 1 << 20} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each in stdout
		stderr string
		left   int // entries in the cache afterwards
	}{
		{"list", []string{"cache", "-dir", dir}, exitOK,
			[]string{"4.0 MiB in 2 entries", "bound: 1.0 GiB, and 30 days unused", "3.0 MiB", "vmlinux-a", "initramfs-b.cpio"}, "", 2},
		{"bad action", []string{"cache", "shred", "-dir", dir}, exitUsage, nil, "usage: vmlab cache [list|clean]", 2},
		{"clean", []string{"cache", "clean", "-dir", dir}, exitOK, []string{"removed 2 entries, 4.0 MiB, from " + dir}, "", 0},
		{"list empty", []string{"cache", "list", "-dir", dir}, exitOK, []string{"0.0 MiB in 0 entries"}, "", 0},
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
		})
	}
}
