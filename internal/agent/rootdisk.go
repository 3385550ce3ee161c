package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// diskMount is where init mounts the machine's disk, in the initramfs. The
// guest's root is the disk's root/ directory, bound onto newRoot; the
// overlays' writable layers are in its overlay/ directory, out of the
// guest's sight (the initramfs is hidden once the root is switched, and its
// mounts live on under it).
const diskMount = "/disk"

// Directories on the disk.
const (
	diskRootDir    = "root"
	diskOverlayDir = "overlay"
)

// diskRoot is the machine's disk, mounted: root becomes the guest's root,
// state holds the overlays' writable layers.
type diskRoot struct{ root, state string }

// mountDisk finds the disk with d's serial and mounts it on diskMount.
func mountDisk(d agentproto.RootDisk) (*diskRoot, error) {
	dev, err := findDisk("/sys/block", d.Serial)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(diskMount, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", diskMount, err)
	}
	if err := unix.Mount(dev, diskMount, d.FSType, unix.MS_NOATIME, d.Options); err != nil {
		return nil, fmt.Errorf("mount the machine's disk (%s, %s): %w; the image is not a usable %s file system: "+
			"check it on the host with e2fsck -f, or delete it to start from an empty disk", dev, d.FSType, err, d.FSType)
	}
	disk := &diskRoot{root: filepath.Join(diskMount, diskRootDir), state: filepath.Join(diskMount, diskOverlayDir)}
	for _, dir := range []string{disk.root, disk.state} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, diskHint(fmt.Errorf("create %s on the machine's disk: %w", filepath.Base(dir), err))
		}
	}
	return disk, nil
}

// pointDisk is the machine's disk when init mounted it before the
// snapshot point (agentproto.SnapshotDiskParam): what the host asked for,
// and the mount. A machine restored from that snapshot has a
// copy of the disk as it was at the point, so it uses the mount as it is
// (ownDisk); nil on any other boot.
var pointDisk *pointMount

// pointMount is a disk mounted before the snapshot point: what the host
// asked for, and the mount.
type pointMount struct {
	spec agentproto.RootDisk
	disk *diskRoot
}

// mountPointDisk mounts, on a snapshot boot, the disk the kernel command
// line names (if any) and writes everything out to it: the host copies
// the disk once QEMU has stopped, and the kernel's memory, the snapshot's,
// must hold nothing for it that the copy lacks.
func mountPointDisk(cmdline string) error {
	d, err := agentproto.ParseSnapshotDisk(cmdline)
	if err != nil || d == nil {
		return err
	}
	disk, err := mountDisk(*d)
	if err != nil {
		return err
	}
	if err := syncDisk(diskMount); err != nil {
		return err
	}
	pointDisk = &pointMount{*d, disk}
	return nil
}

// syncDisk writes out the file system mounted at dir.
func syncDisk(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync the machine's disk: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync the machine's disk: %w", err)
	}
	return nil
}

// checkPointDisk refuses a restore whose machine's disk, d (nil: none), is
// not the one mounted before the point: the host restores a machine from
// such a snapshot only with a copy of that disk (the snapshot key says
// so), and any other disk under that mount would be corrupted.
func checkPointDisk(d *agentproto.RootDisk) error {
	if pointDisk == nil {
		return nil
	}
	if d == nil || *d != pointDisk.spec {
		return fmt.Errorf("restore: the machine's disk (%+v) is not the one mounted before the snapshot point (%+v)", d, pointDisk.spec)
	}
	return nil
}

// ownDisk returns the machine's disk, d: the one mounted before the
// snapshot point (checkPointDisk has checked it is d), or d mounted now.
func ownDisk(d agentproto.RootDisk) (*diskRoot, error) {
	if pointDisk != nil {
		return pointDisk.disk, nil
	}
	return mountDisk(d)
}

// findDisk returns the /dev node of the block device under sysBlock whose
// serial is serial. virtio_blk registers its disks while the module loads,
// and devtmpfs makes their nodes before that returns: the disk is there
// when init looks, or not at all.
func findDisk(sysBlock, serial string) (string, error) {
	disks := scanDisks(sysBlock)
	var seen []string
	for _, d := range disks {
		if d.serial == serial {
			return "/dev/" + d.name, nil
		}
		seen = append(seen, d.name)
	}
	if len(seen) == 0 {
		seen = []string{"none"}
	}
	return "", fmt.Errorf("find the machine's disk: no block device has serial %q (disks: %s); the initramfs may lack virtio_blk",
		serial, strings.Join(seen, ", "))
}

// blockDisk is a disk under /sys/block and its serial.
type blockDisk struct{ name, serial string }

// diskScans holds each directory's disks, scanned once: disks are not
// hot-plugged, and reading a virtio disk's serial is a request to the
// device (a restored guest under TCG spent 60 ms finding its disk). A
// snapshot boot scans before the point (snapshotPoint), so a restore reads
// no serial: its shape's disks, their serials included, are the snapshot's
// (the snapshot key holds QEMU's command line).
var diskScans struct {
	sync.Mutex
	dirs map[string][]blockDisk
}

// scanDisks returns the disks under sysBlock (/sys/block) that have a
// serial file, by name, scanning them the first time.
func scanDisks(sysBlock string) []blockDisk {
	diskScans.Lock()
	defer diskScans.Unlock()
	if d, ok := diskScans.dirs[sysBlock]; ok {
		return d
	}
	paths, _ := filepath.Glob(filepath.Join(sysBlock, "*", "serial"))
	var disks []blockDisk
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		disks = append(disks, blockDisk{filepath.Base(filepath.Dir(p)), strings.TrimSpace(string(b))})
	}
	if diskScans.dirs == nil {
		diskScans.dirs = map[string][]blockDisk{}
	}
	diskScans.dirs[sysBlock] = disks
	return disks
}

// replaceSymlink makes path a link to target. On a disk kept from an
// earlier boot the link is there already and stays; a link to elsewhere or
// an empty directory is replaced (the host's root changed); anything else
// is an error.
func replaceSymlink(path, target string) error {
	if cur, err := os.Readlink(path); err == nil && cur == target {
		return nil
	}
	if err := os.Symlink(target, path); !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("replace %s with a link to %s: %w", path, target, err)
	}
	return os.Symlink(target, path)
}

// diskHint adds what to do to an error that says the machine's disk is
// full: init writes to it (the host name, the mount points) before the
// host can say anything.
func diskHint(err error) error {
	if errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: the machine's disk is full: give the machine a bigger disk_size, or delete its state image to start afresh", err)
	}
	return err
}

// overlayKey names a share's writable layer by its guest path, which stays
// the same from boot to boot (the device tags are numbered).
func overlayKey(guestPath string) string {
	p := strings.Trim(filepath.Clean(guestPath), "/")
	if p == "" {
		return "_"
	}
	return strings.ReplaceAll(p, "/", "!")
}
