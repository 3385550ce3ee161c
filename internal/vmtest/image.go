package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
)

// DebianImage returns the Debian root image the image tests boot: the
// erofs file $VMLAB_TEST_IMAGE names, made with
//
//	mmdebstrap --variant=minbase --include=kmod,iputils-ping,iproute2 bookworm DIR
//	mkfs.erofs FILE DIR
//
// It skips the test when the variable is unset.
func DebianImage(t testing.TB) *machine.RootImage {
	t.Helper()
	path := os.Getenv("VMLAB_TEST_IMAGE")
	if path == "" {
		t.Skip("VMLAB_TEST_IMAGE names no Debian erofs image to boot")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("VMLAB_TEST_IMAGE: %v", err)
	}
	return &machine.RootImage{Name: "debian:bookworm", Path: path, FSType: "erofs"}
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
