package machine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
)

// RootImage is a file holding a whole root file system that a machine
// boots instead of the host's root (docs/images.md): a read-only
// virtio-blk device under an overlay whose writable layer is the machine's
// disk. The host's kernel boots it, and the host's module tree is shared
// read-only at /lib/modules/<version> whatever the image holds.
type RootImage struct {
	// Name is the image's reference as declared ("debian:bookworm"), for
	// messages.
	Name string
	// Path is the image file. It is opened read-only: any number of
	// machines, in one run or several, may boot the same file at once.
	Path string
	// FSType is its file system: "erofs" or "ext4".
	FSType string
	// SHA256 is Path's content digest (image.Image.SHA256), which goes in
	// a snapshot's key: the kernel reads the image's first blocks before
	// the snapshot point. Empty: the key hashes the file, once per
	// process.
	SHA256 string
}

// imageSerial is the virtio-blk serial the guest finds the image by.
const imageSerial = "vmlab-image"

// check reports what is wrong with img before a boot.
func (img *RootImage) check() error {
	if img.FSType != "erofs" && img.FSType != "ext4" {
		return fmt.Errorf("boot image %s: file system %q: want erofs or ext4", img.Name, img.FSType)
	}
	if _, err := os.Stat(img.Path); err != nil {
		return fmt.Errorf("boot image %s: %w", img.Name, err)
	}
	return nil
}

// imageLayout returns the shares and the guest's mount plan of a machine
// booting img: the host's module tree read-only at its place in the image,
// then the test's shares under overlays. The host's root directories are
// not shared.
func imageLayout(img *RootImage, extra []Share, fs, modules, version string) ([]qemu.Share, agentproto.BootConfig) {
	shares, boot := layoutShares(nil, extra, fs, nil)
	tag := fmt.Sprintf("vmlab%d", len(shares))
	shares = append(shares, qemu.Share{Tag: tag, HostPath: modules, ReadOnly: true, Static: true})
	boot.Mounts = append(boot.Mounts, agentproto.Mount{Tag: tag, Path: filepath.Join("/lib/modules", version),
		ReadOnly: true, Cache: "loose"})
	boot.Image = &agentproto.RootImage{Name: img.Name, Serial: imageSerial, FSType: img.FSType}
	return shares, boot
}

// qemuImage is img as QEMU attaches it: read-only, so that QEMU takes a
// shared lock and other machines may open the file too; writeback, so
// that the host's page cache holds what one machine read for the next.
func qemuImage(img *RootImage) *qemu.Disk {
	return &qemu.Disk{Path: img.Path, Serial: imageSerial, Cache: "writeback", ReadOnly: true}
}
