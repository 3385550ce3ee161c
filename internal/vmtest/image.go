package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/image"
	"github.com/vmlab/vmlab/internal/machine"
)

// DebianImage returns the Debian bookworm image (with iproute2 and
// iputils-ping) the image tests boot, from the user's image cache, built
// there with mmdebstrap at the first call (about 45 s, from the archive
// the host's apt uses). It skips the test without mmdebstrap.
func DebianImage(t testing.TB) *machine.RootImage {
	t.Helper()
	return DebianImageWith(t, "iproute2", "iputils-ping")
}

// DebianImageWith is DebianImage with packages instead (init = "systemd"
// needs "systemd" among them).
func DebianImageWith(t testing.TB, packages ...string) *machine.RootImage {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build a Debian image")
	}
	const name = "debian:bookworm"
	ref, err := image.ParseRef(name)
	if err != nil {
		t.Fatal(err)
	}
	img, err := (&image.Store{Logf: t.Logf}).Get(t.Context(), ref, packages)
	if err != nil {
		t.Fatal(err)
	}
	return &machine.RootImage{Name: name, Path: img.Path, FSType: img.FSType, SHA256: img.SHA256}
}

// NoShellImage makes an erofs image holding only a static busybox called
// cat, sleep and ls: no /bin/sh. It skips the test without busybox-static
// or mkfs.erofs (erofs-utils).
func NoShellImage(t testing.TB) *machine.RootImage {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("no mkfs.erofs (erofs-utils)")
	}
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("no busybox")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	bin := filepath.Join(root, "usr/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"cat", "sleep", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "noshell.erofs")
	if out, err := exec.Command(mkfs, "--quiet", "--all-root", img, root).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v: %s", err, out)
	}
	return &machine.RootImage{Name: "test:noshell", Path: img, FSType: "erofs"}
}
