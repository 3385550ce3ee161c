package machine

import (
	"strings"
	"testing"
)

// TestImageLayout: an image machine shares none of the host's root, only
// the host's module tree (read-only, no overlay) and the test's shares.
func TestImageLayout(t *testing.T) {
	img := &RootImage{Name: "debian:bookworm", Path: "/c/b.erofs", FSType: "erofs"}
	shares, boot := imageLayout(img, []Share{{HostPath: "/src", GuestPath: "/mnt/src"}}, "9p", "/lib/modules/6.1.0-1", "6.1.0-1")
	if len(shares) != 2 || shares[0].HostPath != "/src" || shares[1].HostPath != "/lib/modules/6.1.0-1" || !shares[1].ReadOnly {
		t.Fatalf("shares: got %+v, want the test's share, then the module tree read-only", shares)
	}
	mods := boot.Mounts[1]
	if mods.Path != "/lib/modules/6.1.0-1" || !mods.ReadOnly || mods.Overlay {
		t.Errorf("module mount: got %+v, want /lib/modules/6.1.0-1 read-only, no overlay", mods)
	}
	if !boot.Mounts[0].Overlay || boot.Symlinks != nil {
		t.Errorf("mounts: got %+v and links %+v, want the share under an overlay and no host links", boot.Mounts, boot.Symlinks)
	}
	if boot.Image == nil || boot.Image.Name != img.Name || boot.Image.FSType != "erofs" || boot.Image.Serial != imageSerial {
		t.Errorf("boot image: got %+v", boot.Image)
	}
	if d := qemuImage(img); !d.ReadOnly || d.Path != img.Path {
		t.Errorf("qemu image: got %+v, want read-only %s", d, img.Path)
	}
}

func TestRootImageCheck(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		img  RootImage
		want string
	}{
		{"ok", RootImage{Name: "i", Path: dir, FSType: "ext4"}, ""},
		{"fs", RootImage{Name: "i", Path: dir, FSType: "squashfs"}, `file system "squashfs"`},
		{"missing", RootImage{Name: "i", Path: dir + "/none", FSType: "erofs"}, "no such file"},
	} {
		err := tt.img.check()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}
