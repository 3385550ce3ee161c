package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFindDisk finds the machine's disk by its serial among the extra
// disks, whatever its name.
func TestFindDisk(t *testing.T) {
	sys := t.TempDir()
	for name, serial := range map[string]string{"vda": "", "vdb": "vmlab-root\n", "vdc": "other"} {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "serial"), []byte(serial), 0o644)
	}
	if dev, err := findDisk(sys, "vmlab-root"); err != nil || dev != "/dev/vdb" {
		t.Errorf("got %q, %v; want /dev/vdb", dev, err)
	}
	_, err := findDisk(sys, "missing")
	if err == nil || !strings.Contains(err.Error(), `no block device has serial "missing" (disks: vda, vdb, vdc)`) {
		t.Errorf("got %v, want an error listing the disks", err)
	}
}

// TestReplaceSymlink recreates the host root's top-level links on a disk
// kept from an earlier boot: the same link stays, another link or an empty
// directory is replaced, anything else is an error (nothing is deleted).
func TestReplaceSymlink(t *testing.T) {
	root := t.TempDir()
	os.Symlink("usr/bin", filepath.Join(root, "same"))
	os.Symlink("elsewhere", filepath.Join(root, "other"))
	os.Mkdir(filepath.Join(root, "emptydir"), 0o755)
	os.MkdirAll(filepath.Join(root, "fulldir", "x"), 0o755)
	for _, name := range []string{"new", "same", "other", "emptydir"} {
		if err := replaceSymlink(filepath.Join(root, name), "usr/bin"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if got, _ := os.Readlink(filepath.Join(root, name)); got != "usr/bin" {
			t.Errorf("%s: got a link to %q, want usr/bin", name, got)
		}
	}
	if err := replaceSymlink(filepath.Join(root, "fulldir"), "usr/bin"); err == nil {
		t.Error("a directory with files was replaced")
	}
	if _, err := os.Stat(filepath.Join(root, "fulldir", "x")); err != nil {
		t.Errorf("the directory's files: %v", err)
	}
}

func TestOverlayKey(t *testing.T) {
	for path, want := range map[string]string{"/usr": "usr", "/srv/data/": "srv!data", "/": "_"} {
		if got := overlayKey(path); got != want {
			t.Errorf("overlayKey(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestDiskHint(t *testing.T) {
	full := diskHint(fmt.Errorf("write /etc/hostname: %w", unix.ENOSPC))
	if !errors.Is(full, unix.ENOSPC) || !strings.Contains(full.Error(), "the machine's disk is full: give the machine a bigger disk_size") {
		t.Errorf("got %v, want ENOSPC with what to do", full)
	}
	other := errors.New("other")
	if diskHint(other) != other {
		t.Errorf("an error that is not ENOSPC changed")
	}
}

// TestFindDiskScansOnce: the disks' serials are read once (a virtio disk's
// serial is a request to the device), so a disk found again is the one
// found first, whatever its serial file says later.
func TestFindDiskScansOnce(t *testing.T) {
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "vda"), 0o755)
	os.WriteFile(filepath.Join(sys, "vda", "serial"), []byte("vmlab-root\n"), 0o644)
	if dev, err := findDisk(sys, "vmlab-root"); err != nil || dev != "/dev/vda" {
		t.Fatalf("got %q, %v; want /dev/vda", dev, err)
	}
	os.WriteFile(filepath.Join(sys, "vda", "serial"), []byte("changed\n"), 0o644)
	if dev, err := findDisk(sys, "vmlab-root"); err != nil || dev != "/dev/vda" {
		t.Errorf("the second time: got %q, %v; want /dev/vda from the first scan", dev, err)
	}
}

// TestMakeRootDirs: the root's directories get their Unix modes, the
// temporary ones sticky (1777, as on any Unix: a user cannot remove
// another's files there), whether new or there with another mode.
func TestMakeRootDirs(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "tmp"), 0o755) // a kept disk's, say
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	if err := makeRootDirs(root); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777,
		"root": 0o700, "home": 0o755, "mnt": 0o755, "var/tmp": 0o1777}
	for p, mode := range want {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, p), &st); err != nil {
			t.Errorf("/%s: %v", p, err)
			continue
		}
		if got := st.Mode & 0o7777; got != mode || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("/%s: got mode %#o (type %#o), want a directory of %#o", p, got, st.Mode&unix.S_IFMT, mode)
		}
	}
	if len(rootDirs) != len(want) {
		t.Errorf("rootDirs has %d directories, the test %d", len(rootDirs), len(want))
	}
}
