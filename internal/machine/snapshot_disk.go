package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The disk at the point (docs/snapshots.md). A machine's own disk is made
// empty by vmlab at its first boot (MakeDiskImage), and mounting it is a
// restored machine's largest step after the point under TCG (ext4's mount
// and its directories, 0.1-0.2 s of cold code). So a machine whose disk is
// new is of a shape of its own: its snapshot boot mounts the disk before
// the point (agentproto.SnapshotDiskParam), the snapshot keeps a copy of
// the disk as it was then (snapDisk, in the header's sums, checked by
// checkSnapshot as the memory file is), and every
// machine restored from it starts from a copy of that copy instead of its
// empty disk. A machine whose disk already holds something (a reboot, a
// crash and start, a kept disk from an earlier run) is the other shape,
// whose guest mounts its own disk after the point, as a cold boot does.

// saveDisk copies the disk image at disk, as the snapshot's boot left it
// (its QEMU is paused), into the snapshot directory tmp, syncs it and
// records its size and sum in h.
func saveDisk(tmp, disk string, h *snapshotHeader) error {
	var err error
	if h.DiskSHA256, h.Disk, err = copySparse(disk, filepath.Join(tmp, snapDisk)); err != nil {
		return fmt.Errorf("save the machine's disk: %w", err)
	}
	return nil
}

// giveDisk replaces the machine's new disk image at path with a copy of
// the snapshot directory dir's disk, whose header is h: the disk its
// restored guest has mounted already.
func giveDisk(dir, path string, h snapshotHeader) error {
	if h.DiskSHA256 == "" {
		return errors.New("its header has no disk, though its shape mounts one before the point")
	}
	tmp := path + ".new"
	// A run killed while it copied left its copy: it is no one's.
	os.Remove(tmp)
	if _, _, err := copySparse(filepath.Join(dir, snapDisk), tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy its disk: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy its disk: %w", err)
	}
	return nil
}

// copySparse copies the file src to a new file dst (mode 0600), synced,
// writing only src's pages that are not all zeros (copyPages): a 4 GiB
// disk image of which the guest wrote a few MiB copies in milliseconds
// and takes that much room. It returns sumSparse's sum of the copy and its
// size, and fails if dst exists.
func copySparse(src, dst string) (sum string, size int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if sum, size, err = copyPages(out, in); err != nil {
		return "", 0, err
	}
	return sum, size, out.Sync()
}
