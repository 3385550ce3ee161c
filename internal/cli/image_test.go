package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeImage makes a cache entry as internal/image records it.
func writeImage(t *testing.T, dir, key, ref, pkgs string) {
	t.Helper()
	data := []byte(strings.Repeat(key, 1000))
	if err := os.WriteFile(filepath.Join(dir, key+".erofs"), data, 0o444); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	rec := fmt.Sprintf(`{"key":%q,"ref":%q,"packages":[%s],"fstype":"erofs","size":%d,"sha256":%q,"arch":"amd64","recipe":1,"built":"2026-11-30T10:00:00Z"}`,
		key, ref, pkgs, len(data), hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, key+".json"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImageCommand(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "debian-bookworm-aaaa", "debian:bookworm", `"curl"`)
	writeImage(t, dir, "debian-bookworm-bbbb", "debian:bookworm", "")
	writeImage(t, dir, "debian-trixie-cccc", "debian:trixie", `"curl","redis-server"`)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each in stdout
		stderr string
		left   int // images left afterwards
	}{
		{"ls", []string{"image", "ls", "-dir", dir}, exitOK,
			[]string{"3 images", "bound: 4.0 GiB", "debian-trixie-cccc", "debian:trixie", "curl,redis-server", "2026-11-30"}, "", 3},
		{"no action", []string{"image", "-dir", dir}, exitUsage, nil, "usage: vmlab image ls|build|rm", 3},
		{"build without ref", []string{"image", "build", "-dir", dir}, exitUsage, nil, "usage: vmlab image", 3},
		{"build bad ref", []string{"image", "build", "-dir", dir, "ubuntu:noble"}, exitUsage, nil, `unknown scheme "ubuntu"`, 3},
		{"build bad package", []string{"image", "build", "-dir", dir, "-p", "curl,Bad", "debian:bookworm"}, exitFail, nil, `package "Bad": not a Debian package name`, 3},
		{"rm both", []string{"image", "rm", "-dir", dir, "-all", "debian:sid"}, exitUsage, nil, "usage: vmlab image", 3},
		{"rm unknown key", []string{"image", "rm", "-dir", dir, "debian-sid-dddd"}, exitFail, nil, "remove image debian-sid-dddd: no such image", 3},
		{"rm key", []string{"image", "rm", "-dir", dir, "debian-trixie-cccc"}, exitOK, []string{"removed debian-trixie-cccc debian:trixie"}, "", 2},
		{"rm ref", []string{"image", "rm", "debian:bookworm", "-dir", dir}, exitOK,
			[]string{"removed debian-bookworm-aaaa", "removed debian-bookworm-bbbb"}, "", 0},
		{"rm all of none", []string{"image", "rm", "-all", "-dir", dir}, exitOK, nil, "", 0},
		{"ls empty", []string{"image", "ls", "-dir", dir}, exitOK, []string{"0 images"}, "", 0},
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
			if imgs, _ := filepath.Glob(filepath.Join(dir, "*.erofs")); len(imgs) != tt.left {
				t.Errorf("got %d images left, want %d", len(imgs), tt.left)
			}
		})
	}
}
