package image

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestBuildDebian builds bookworm minbase with one small package from the
// Debian mirror the host's apt uses, checks what the root holds, and gets
// it again from the cache with the archive unreachable.
func TestBuildDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads ~40 MB from the Debian archive and builds for ~1 min")
	}
	if os.Geteuid() != 0 {
		t.Skip("mmdebstrap --mode=root needs root")
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.erofs", "dump.erofs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := &Store{Dir: dir, Logf: t.Logf}
	start := time.Now()
	img, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s: %.1f MB in %.1fs", img.Key, float64(img.Size)/1e6, time.Since(start).Seconds())
	// What the guest side runs, and the package asked for.
	for _, path := range []string{"/", "/usr/bin/sh", "/usr/bin/bash", "/usr/sbin/modprobe", "/usr/sbin/useradd", "/usr/bin/hello"} {
		out, err := exec.Command("dump.erofs", "--path="+path, img.Path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "File : "+path) {
			t.Errorf("%s in the image: %v: %s", path, err, out)
		}
		if path == "/" && !strings.Contains(string(out), "Access: 0755/") {
			t.Errorf("the image's / : %s; want mode 0755, for users other than root", out)
		}
	}

	// Cached, offline: a fresh Store whose archive does not answer.
	offline := &Store{Dir: dir, Logf: t.Logf, archive: &archive{Mirror: "http://127.0.0.1:1/debian", Security: "http://127.0.0.1:1/debian-security"}}
	start = time.Now()
	again, err := offline.Get(ctx, mustRef(t, "debian:bookworm"), []string{"hello"})
	if err != nil || again.Key != img.Key {
		t.Fatalf("offline Get = %s, %v; want the cached %s", again.Key, err, img.Key)
	}
	t.Logf("cached Get offline: %v", time.Since(start).Round(time.Millisecond))
	// Cached, online: the Release check, then the checksum.
	start = time.Now()
	again, err = s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"hello"})
	if err != nil || again.Key != img.Key {
		t.Fatalf("second Get = %s, %v; want the cached %s", again.Key, err, img.Key)
	}
	t.Logf("cached Get online: %v", time.Since(start).Round(time.Millisecond))
}
