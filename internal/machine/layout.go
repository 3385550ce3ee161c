package machine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/hostview"
	"github.com/vmlab/vmlab/internal/qemu"
)

// rootDirs are the host's top-level directories the guest's root is made of.
// Anything else at the host's top level is absent in the guest: /root and
// /home (secrets), /proc, /sys, /dev, /run and /tmp (the guest has its own),
// /boot, /mnt, /media and whatever else is there. A test shares more with
// Config.Shares. The secrets in /etc and /var are hidden by the host view
// (package hostview, docs/host-isolation.md).
var rootDirs = map[string]bool{
	"usr": true, "etc": true, "var": true, "opt": true, "srv": true, "nix": true,
	// Separate directories on systems without merged /usr; symlinks into
	// /usr on those with it (Debian 12, Ubuntu 22.04).
	"bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true,
}

// msize is the 9p message size: the largest the 6.1 virtio transport takes
// (125 pages). Bigger messages mean fewer round trips through QEMU.
const msize = 512000

var hostRoot struct {
	once  sync.Once
	dirs  []string
	links []agentproto.Symlink
}

// scanHostRoot lists the host's root once per process.
func scanHostRoot() ([]string, []agentproto.Symlink) {
	hostRoot.once.Do(func() {
		entries, _ := os.ReadDir("/")
		for _, e := range entries {
			name := e.Name()
			if !rootDirs[name] {
				continue
			}
			if e.Type()&os.ModeSymlink != 0 {
				if target, err := os.Readlink("/" + name); err == nil {
					hostRoot.links = append(hostRoot.links, agentproto.Symlink{Path: name, Target: target})
				}
			} else if e.IsDir() && !isEmptyDir("/"+name) {
				// An empty directory (often /srv) is not worth a device:
				// each costs ~10 ms of a TCG boot (probe, attach, overlay).
				hostRoot.dirs = append(hostRoot.dirs, name)
			}
		}
	})
	return hostRoot.dirs, hostRoot.links
}

// rootLayout returns the shares QEMU exports over fs ("virtiofs", else 9p)
// and the guest's mount plan: the host's root directories read-only under
// overlays, as view shows them (nil: as they are), then the test's own
// shares, also under overlays so the host never sees a write.
func rootLayout(extra []Share, fs string, view *hostview.View) ([]qemu.Share, agentproto.BootConfig) {
	dirs, links := scanHostRoot()
	shares, boot := layoutShares(dirs, extra, fs, view)
	boot.Symlinks = links
	return shares, boot
}

// layoutShares returns the shares of the host's directories dirs and of
// extra, and the guest's plan to mount them under overlays.
func layoutShares(dirs []string, extra []Share, fs string, view *hostview.View) ([]qemu.Share, agentproto.BootConfig) {
	boot := agentproto.BootConfig{FS: "virtiofs"}
	if fs != "virtiofs" {
		boot.FS, boot.MSize = "9p", msize
	}
	var shares []qemu.Share
	add := func(host, guest string, static bool) {
		tag := fmt.Sprintf("vmlab%d", len(shares))
		cache := "mmap"
		if static {
			cache = "loose"
		}
		shares = append(shares, qemu.Share{Tag: tag, HostPath: host, ReadOnly: true, Static: static})
		boot.Mounts = append(boot.Mounts, agentproto.Mount{Tag: tag, Path: guest, Overlay: true, Cache: cache})
	}
	for _, d := range dirs {
		// The host's system directories do not change during a test:
		// cache them in the guest (9p loose, virtiofs always) and save a
		// round trip per lookup.
		add(view.Source("/"+d), "/"+d, true)
	}
	for _, s := range extra {
		add(filepath.Clean(s.HostPath), filepath.Clean(s.GuestPath), false)
	}
	return shares, boot
}

func isEmptyDir(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}
