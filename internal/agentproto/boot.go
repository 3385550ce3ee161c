package agentproto

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// BootParam is the kernel command-line parameter that carries the BootConfig,
// as base64url-encoded JSON. It has no dot, so the kernel does not mistake it
// for a module parameter.
const BootParam = "vmlab"

// BootConfig is what the guest's init needs before the channel is up: how to
// assemble its root file system and what to call itself.
type BootConfig struct {
	Hostname string `json:"hostname"`
	// Mounts are the guest's file systems from the host, mounted in order.
	Mounts []Mount `json:"mounts"`
	// Symlinks recreate the host root's top-level links (bin -> usr/bin).
	Symlinks []Symlink `json:"symlinks,omitempty"`
	// FS is the transport for Mounts: "9p" or "virtiofs".
	FS string `json:"fs"`
	// MSize is the 9p message size in bytes.
	MSize int `json:"msize,omitempty"`
	// Disk is the machine's own disk, which holds its writable root: the
	// overlays' writable layers and every directory that is no share
	// (/root, /home, /tmp, ...). Nil: they live in guest memory and are
	// gone at the next boot.
	Disk *RootDisk `json:"disk,omitempty"`
	// Init is "systemd" when the agent, once the root is built, hands PID 1
	// to the root's /lib/systemd/systemd and comes back as a unit;
	// empty: the agent stays PID 1 (fast mode).
	Init string `json:"init,omitempty"`
	// Display says the machine has an emulated display: the agent loads
	// its DRM driver (the initramfs's /modules/display) and, in fast
	// mode, runs a root shell on tty1.
	Display bool `json:"display,omitempty"`
	// Coverage is the guest directory where the machine's raw coverage
	// directory (a writable share among Mounts, docs/coverage.md) is
	// mounted; every process the agent or systemd starts gets
	// CoverageEnv(Coverage). Empty: no coverage.
	Coverage string `json:"coverage,omitempty"`
	// Image is the read-only root image the guest's root is made of, under
	// an overlay whose writable layer is on Disk; nil: the root is the
	// host's directories among Mounts.
	Image *RootImage `json:"image,omitempty"`
}

// RootImage is a read-only block device holding a whole root file system
// (a machine image, docs/images.md).
type RootImage struct {
	// Name is the image's reference as declared ("debian:bookworm"), for
	// messages.
	Name string `json:"name"`
	// Serial is the virtio-blk serial the guest finds the device by.
	Serial string `json:"serial"`
	// FSType is the file system on it: "erofs" or "ext4".
	FSType string `json:"fstype"`
}

// CoverageNotes is the file, in the coverage directory, where a fast-mode
// agent that powers off cleanly lists the services a signal ended, one a
// line ("service web was killed by signal 15 (terminated)"): they wrote
// no counters. The host folds it into the machine's state and removes it.
const CoverageNotes = "vmlab-notes.txt"

// CoverageGuestDir is where a machine's raw coverage directory is mounted
// in the guest when a run collects coverage.
const CoverageGuestDir = "/run/vmlab/coverage"

// CoverageEnv is the environment a process gets when the machine collects
// coverage into the guest directory dir: Go binaries built with -cover
// write their counters to dir/go, C and C++ binaries built with --coverage
// their .gcda files under dir/gcov at their object file's absolute path
// (GCOV_PREFIX_STRIP=0). A process's own setting of any of them wins.
func CoverageEnv(dir string) []string {
	return []string{"GOCOVERDIR=" + dir + "/go", "GCOV_PREFIX=" + dir + "/gcov", "GCOV_PREFIX_STRIP=0"}
}

// RootDisk is the block device the guest's writable root lives on.
type RootDisk struct {
	// Serial is the virtio-blk serial the guest finds the device by
	// (/sys/block/vdX/serial): the machine's extra disks keep /dev/vda,
	// /dev/vdb, ... whatever their number.
	Serial string `json:"serial"`
	// FSType is the file system on it, "ext4"; Options its mount options.
	FSType  string `json:"fstype"`
	Options string `json:"options,omitempty"`
}

// Network is what OpNetwork configures: the NICs and /etc/hosts. It travels
// as a request after the agent's hello rather than on the kernel command
// line, whose 2048 bytes could not hold the hosts of a large test.
type Network struct {
	Interfaces []Interface `json:"ifs,omitempty"`
	// Hosts are the names /etc/hosts maps, besides localhost.
	Hosts []HostEntry `json:"hosts,omitempty"`
}

// Interface is a NIC to configure: found by MAC, named and addressed.
type Interface struct {
	MAC   string   `json:"mac"`
	Name  string   `json:"name"`  // eth1, eth2, ...
	Addrs []string `json:"addrs"` // CIDR prefixes: 192.168.1.2/24, 2001:db8:1::2/64
}

// HostEntry maps a machine name to its addresses in /etc/hosts.
type HostEntry struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
}

// Mount is a host directory shared into the guest.
type Mount struct {
	Tag  string `json:"tag"`  // the device's mount tag
	Path string `json:"path"` // where it appears in the guest
	// Overlay puts a writable tmpfs layer over the read-only share: the guest
	// can change files, the host never sees the changes.
	Overlay bool `json:"overlay,omitempty"`
	// Cache is the 9p cache mode: "loose" for trees that do not change while
	// the machine runs (the host root), "mmap" for shares a test may update.
	Cache string `json:"cache,omitempty"`
	// ReadOnly mounts the share read-only without an overlay (the host's
	// kernel modules under a machine image's root).
	ReadOnly bool `json:"readonly,omitempty"`
}

// Symlink is a symbolic link created in the guest's root.
type Symlink struct {
	Path   string `json:"path"`
	Target string `json:"target"`
}

// Param encodes c as a kernel command-line parameter.
func (c BootConfig) Param() string {
	return BootParam + "=" + base64.RawURLEncoding.EncodeToString(Encode(c))
}

// ParseBootConfig finds and decodes the BootConfig in a kernel command line.
func ParseBootConfig(cmdline string) (BootConfig, error) {
	var c BootConfig
	for _, field := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(field, BootParam+"=")
		if !ok {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return c, fmt.Errorf("decode boot config: %w", err)
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("decode boot config: %w", err)
		}
		return c, nil
	}
	return c, fmt.Errorf("no %s= parameter on the kernel command line", BootParam)
}

// ElideBootParam returns line with the value of each BootConfig parameter
// in it ("vmlab=eyJob3N0..."), shortened to "vmlab=…". The parameter is
// ~900 characters of base64 that a person cannot read, and lines that
// quote the kernel command line (the kernel's own, Xorg's banner) would
// otherwise fill a failure's console tail. Use it where console lines are
// shown to people; the console log keeps them whole.
func ElideBootParam(line string) string {
	const key = BootParam + "="
	// minValue keeps short values ("vmlab=1" in a user's output): a
	// BootConfig is never under 16 characters encoded.
	const minValue = 16
	var b strings.Builder
	rest := line
	for {
		i := strings.Index(rest, key)
		if i < 0 {
			break
		}
		n := i + len(key)
		if i > 0 && isParamByte(rest[i-1]) {
			b.WriteString(rest[:n])
			rest = rest[n:]
			continue
		}
		end := n
		for end < len(rest) && isParamByte(rest[end]) {
			end++
		}
		b.WriteString(rest[:n])
		if end-n >= minValue {
			b.WriteString("…")
		} else {
			b.WriteString(rest[n:end])
		}
		rest = rest[end:]
	}
	if b.Len() == 0 {
		return line
	}
	b.WriteString(rest)
	return b.String()
}

// isParamByte says whether c is in base64url's alphabet (RawURLEncoding,
// Param's) or could continue a name.
func isParamByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
