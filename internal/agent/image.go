package agent

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// A machine image (BootConfig.Image, docs/images.md): the guest's root is
// the image's file system, mounted read-only from its block device, under
// one overlay whose writable layer is on the machine's disk, as the host's
// directories are over the host root. The agent itself, the modules it
// loads before the root exists and the host's module tree (a read-only
// share among Mounts) come from the host, never from the image.

// imageMount is where init mounts the image, in the initramfs: hidden once
// the root is switched, its mount lives on under the overlay.
const imageMount = "/image"

// rootImage is the image the guest's root is made of, for messages; "" on
// the host's root.
var rootImage string

// mountImageRoot mounts img on imageMount and, over it, the overlay that is
// the new root, its writable layer on the disk (in a tmpfs without one). It
// returns where the other overlays' writable layers go.
func mountImageRoot(img agentproto.RootImage, disk *diskRoot) (string, error) {
	rootImage = img.Name
	if img.FSType == "erofs" {
		// erofs is among the initramfs's lazy modules: only image
		// machines load it.
		if err := loadLazyModules(); err != nil {
			return "", err
		}
	}
	dev, err := findDisk("/sys/block", img.Serial)
	if err != nil {
		return "", fmt.Errorf("find the image %s: %w", img.Name, err)
	}
	opts := ""
	if img.FSType == "ext4" {
		// noload: never replay a journal on a device that is read-only
		// and shared by other machines.
		opts = "noload"
	}
	if err := os.MkdirAll(imageMount, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", imageMount, err)
	}
	if err := unix.Mount(dev, imageMount, img.FSType, unix.MS_RDONLY, opts); err != nil {
		return "", fmt.Errorf("mount the image %s (%s, %s): %w; the image file is damaged: remove it from the cache to have it rebuilt",
			img.Name, dev, img.FSType, err)
	}
	state := "/imagestate"
	if disk != nil {
		state = disk.state
	} else {
		if err := os.MkdirAll(state, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", state, err)
		}
		if err := unix.Mount("tmpfs", state, "tmpfs", 0, "mode=0755"); err != nil {
			return "", fmt.Errorf("mount the root's writable layer: %w", err)
		}
	}
	upper := filepath.Join(state, "upper", overlayKey("/"))
	work := filepath.Join(state, "work", overlayKey("/"))
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", diskHint(fmt.Errorf("create %s: %w", d, err))
		}
	}
	opts = fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", imageMount, upper, work)
	if err := unix.Mount("overlay", newRoot, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount overlay on the image %s: %w", img.Name, err)
	}
	// The agent writes /etc/hostname and /etc/hosts: a minimal image may
	// have no /etc.
	if _, err := mkdirInRoot(newRoot, "/etc", 0o755); err != nil {
		return "", diskHint(fmt.Errorf("create /etc: %w", err))
	}
	return state, nil
}

// noShellError explains a command line that cannot run because the image
// has no shell; nil when path exists or the root is the host's.
func noShellError(path string) error {
	if rootImage == "" {
		return nil
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	// What a test file's user can do: execute and succeed take command
	// lines, which need the shell.
	return fmt.Errorf("run command: the image %s has no %s, which runs command lines (execute, succeed, wait_until_succeeds): "+
		"add a shell to the image (a static busybox as /bin/sh will do); without one, services whose command is plain words "+
		"still run, and vmlab shell MACHINE -- PROGRAM ARGS... runs a program directly", rootImage, path)
}
