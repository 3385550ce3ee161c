package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
)

// The machine's own disk holds its writable root (the overlays' writable
// layers and every directory that is no share: /root, /home, /tmp, ...), so
// that what the guest writes survives Reboot, Crash + Start and Shutdown +
// Start, as a NixOS machine keeps its disk. It is a sparse raw image holding
// ext4, made on the host with e2fsprogs' mke2fs: a 4 GiB one in 10 ms,
// taking 2 MiB of the host's disk. (qcow2 would need qemu-img, which QEMU's
// system package does not bring.) The guest finds it by its serial.
const (
	diskSerial = "vmlab-root"
	// diskImageName is the temporary image's name in the machine's
	// directory.
	diskImageName = "root.img"
	// diskMountOptions: the inode tables are left uninitialized by mke2fs
	// (lazy_itable_init) and stay so (noinit_itable): zeroing them in the
	// background costs a TCG guest CPU time and the host real blocks. For
	// the same reason the block bitmaps are read when an allocation needs
	// them, not prefetched for every group after the mount
	// (no_prefetch_block_bitmaps: 32 groups on a 4 GiB disk).
	diskMountOptions = "noinit_itable,no_prefetch_block_bitmaps"
)

// diskModules are what the guest needs to mount the disk before its root
// exists: virtio_blk and ext4 (with jbd2, mbcache and crc16 from
// modules.dep), and crc32c, which ext4's metadata checksums ask the crypto
// API for by name (a softdep that modules.dep does not list).
var diskModules = []string{"virtio_blk", "crc32c_generic", "ext4"}

// MakeDiskImage creates path, a sparse raw image of sizeMiB holding an
// empty ext4 file system. It fails if path exists: an image is never
// overwritten.
func MakeDiskImage(path string, sizeMiB int) error {
	mke2fs, err := findE2fsprogs("mke2fs")
	if err != nil {
		return fmt.Errorf("make disk image %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("make disk image: %w", err)
	}
	err = f.Truncate(int64(sizeMiB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// -m 0: no blocks reserved for root, who is the guest's only
		// writer; root_owner: the root directory is the guest's root's,
		// not the host user's who runs mke2fs.
		cmd := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-m", "0", "-L", "vmlab",
			"-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", path)
		if out, cerr := cmd.CombinedOutput(); cerr != nil {
			err = fmt.Errorf("%s: %w: %s", mke2fs, cerr, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("make disk image %s: %w", path, err)
	}
	return nil
}

// diskImage returns the machine's disk image: Config.DiskImage, or
// root.img in the machine's directory. fresh says there is none yet: the
// boot makes it empty (makeDisk), unless a snapshot gives the machine the
// copy of its own (snapshot_disk.go), which spares a mke2fs per restore
// (14 ms here). Called with startMu held.
func (m *Machine) diskImage() (path string, fresh bool, err error) {
	path = m.cfg.DiskImage
	if path == "" {
		path = filepath.Join(m.dir, diskImageName)
		if !m.diskMade {
			// A run killed before its Close left it in a directory
			// that is used again (vmlab run -out DIR): it is no one's.
			os.Remove(path)
		}
	}
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("find disk image: %w", err)
	}
	m.diskMade = true
	return path, true, nil
}

// makeDisk makes the machine's fresh disk image at path (diskImage)
// unless it is there already, given by a snapshot.
func (m *Machine) makeDisk(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return MakeDiskImage(path, m.cfg.DiskMiB)
}

// qemuDisk returns the machine's disk for QEMU and for the guest's init.
// A temporary image ignores the guest's flushes (cache=unsafe): a killed
// QEMU still loses nothing, and only a crash of the host, after which the
// run is gone anyway, could. An image in a state directory outlives the
// run, so its flushes reach the host's disk (writeback).
func (m *Machine) qemuDisk(path string) (*qemu.Disk, *agentproto.RootDisk) {
	cache := "unsafe"
	if m.cfg.DiskImage != "" {
		cache = "writeback"
	}
	return &qemu.Disk{Path: path, Serial: diskSerial, Cache: cache},
		&agentproto.RootDisk{Serial: diskSerial, FSType: "ext4", Options: diskMountOptions}
}

// closeCleanly shuts the machine down cleanly when its disk is kept or it
// collects coverage. A kept disk: the guest's page cache holds what it
// wrote in the last seconds (ext4 commits every 5 s), which killing QEMU
// would lose from the next run. Coverage: Go and gcov write their counters
// when a process exits, so the services must be stopped (SIGTERM, their
// stop timeout, then SIGKILL) rather than killed with QEMU. The shutdown
// is bounded as any (powerLocked's 30 s, scaled): fast mode's 7 s of grace
// and a systemd guest's 20 s before it forces the power-off fit, and a
// clean one takes under a second; a machine that does not stop in time
// is then killed by Close, its disk's journal replayed at its next boot,
// its coverage partial.
func (m *Machine) closeCleanly() {
	if m.cfg.DiskImage == "" && m.cfg.Coverage.Dir == "" || !m.running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.scale(30*time.Second))
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		m.logf("shut down at the test's end: %v", err)
	}
}

// hostViewDir is where the machine's host view (its machine-id and host
// keys) is kept: beside a kept disk, so that the machine is the same one
// (ssh's known_hosts agrees) in the next run; else in its directory, for
// its reboots.
func (m *Machine) hostViewDir() string {
	if img := m.cfg.DiskImage; img != "" {
		return strings.TrimSuffix(img, filepath.Ext(img)) + ".hostview"
	}
	return filepath.Join(m.dir, "hostview")
}

// removeTempDisk removes the temporary disk image when the machine's
// directory outlives it (vmlab run -out DIR keeps the directories).
func (m *Machine) removeTempDisk() {
	if m.cfg.DiskImage == "" && m.dir != "" {
		os.Remove(filepath.Join(m.dir, diskImageName))
	}
}
