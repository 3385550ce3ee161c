package machine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestImageAbsoluteLibLink boots an image whose /lib is an absolute
// symlink (lib -> /usr/lib, as some image builders write usr-merged
// roots): the host's module tree, mounted at /lib/modules/<version>, is
// where the guest looks, in the image's /usr/lib, not in the initramfs's
// /usr/lib that the symlink named there.
func TestImageAbsoluteLibLink(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("no mkfs.erofs (erofs-utils)")
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no busybox")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"usr/bin", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"usr/bin/sh": "busybox", "usr/bin/ls": "busybox", "bin": "usr/bin", "lib": "/usr/lib"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "abslib.erofs")
	if out, err := exec.Command(mkfs, "--quiet", "--all-root", file, root).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v: %s", err, out)
	}
	img := &machine.RootImage{Name: "test:abslib", Path: file, FSType: "erofs"}
	m := vmtest.Machine(t, machine.Config{RootImage: img, Machine: spec.Machine{Name: "abslib"}})
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	out, err := m.Succeed(ctx, "ls /lib/modules/*/modules.dep /usr/lib/modules/*/modules.dep")
	if err != nil || strings.Count(out, "modules.dep") != 2 {
		t.Errorf("the module tree through /lib and /usr/lib: got %q, %v; want modules.dep in both", out, err)
	}
}
