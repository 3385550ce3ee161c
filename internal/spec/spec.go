// Package spec owns the machine declaration: the plain data that a test
// file's machine(...), the Go API's options and the CLI's flags all produce,
// and the one Check every declaration passes before anything is created on
// disk or booted. It holds no wiring (callbacks, sockets, directories, the
// boot): machine.Config adds that around a Machine.
//
// Check returns every problem at once, each naming the field it is about
// (the test files' keyword, such as "memory"), so that each front end can
// say where the mistake is: file:line:col of the keyword argument in a test
// file, the option's name in Go, the flag's name in the CLI.
package spec

import (
	"os"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Defaults and limits of a declaration. They are documented in
// docs/test-files.md; change both together.
const (
	// DefaultMemoryMiB is a machine's memory when the declaration names none.
	DefaultMemoryMiB = 512
	// MinMemoryMiB is the least memory a machine may have. Measured under TCG
	// with Debian's 6.1 kernel and vmlab's 13 MB initramfs (2026-12-01):
	// 64 MiB hangs silently until the 60 s boot timeout, 96 MiB panics while
	// the kernel unpacks the initramfs ("System is deadlocked on memory"),
	// 104 MiB boots with 18 MiB available, 128 MiB with 41 MiB. The floor
	// keeps that 24 MiB margin over the least that boots, for a growing
	// initramfs and a small test's commands; real work wants the default.
	MinMemoryMiB = 128
	// MaxMachines is the most machines one lab holds: the last octet of
	// 192.168.v.n.
	MaxMachines = 254
	// MaxVLAN is the highest VLAN number: the third octet of 192.168.v.n.
	MaxVLAN = 254
	// MaxDiskMiB bounds one extra disk (1 TiB). Disks are sparse files, but
	// a guest that fills one fills the host's disk.
	MaxDiskMiB = 1 << 20
	// DefaultDiskMiB is the size of a machine's own disk, its writable root,
	// when the declaration names none. The image is a sparse file: a new
	// one takes 2 MiB of the host's disk, and mke2fs formats it in 10 ms.
	DefaultDiskMiB = 4096
	// MinDiskMiB is the smallest disk_size: room for ext4's metadata, the
	// overlays' copies of what setup changes, and a test's files.
	MinDiskMiB = 16
	// MaxNameLen is the longest machine name: a host name label.
	MaxNameLen = 63
	// MaxAccountLen is the longest user or group name useradd accepts.
	MaxAccountLen = 32
)

// Machine declares one machine. Each field's tag is its keyword in test
// files (machine(memory = 256)), the name problems give it. The zero value of MemoryMiB and CPUs means
// the default to machine.New; the front ends start from New, so a zero that
// a user wrote is a mistake Check reports.
type Machine struct {
	// Name is the machine's name and the guest's host name: letters,
	// digits, '-' and '_', 1 to 63 of them. It also names the machine's
	// directory under the run's output directory.
	Name string `spec:"name"`
	// MemoryMiB is the guest's memory, MinMemoryMiB up to the host's.
	MemoryMiB int `spec:"memory"`
	// CPUs is the guest's CPU count, 1 up to the host's.
	CPUs int `spec:"cpus"`
	// VLANs the machine is on, in order (eth1, eth2, ...). Nil means [1];
	// an empty non-nil slice means no network at all.
	VLANs []int `spec:"vlans"`
	// UserNet adds eth0, a user-mode NIC whose only use is port forwarding:
	// it has no route out and the guest cannot reach the host through it.
	UserNet bool `spec:"user_net"`
	// ForwardPorts make host ports on the host's 127.0.0.1 reach guest
	// ports through eth0, at every boot (NixOS's
	// virtualisation.forwardPorts). Declaring any implies UserNet. A zero
	// HostPort picks a free port at the first boot, kept for the later
	// ones.
	ForwardPorts []Forward `spec:"forward_ports"`
	// Shares are host directories made visible in the guest. The guest sees
	// them writable, but writes go to an overlay on the machine's disk: the host's
	// files never change.
	Shares []Share `spec:"shares"`
	// Setup is applied at every boot: users, groups, files, modules, sysctls.
	Setup Setup `spec:",inline"`
	// Image is the machine image the guest's root is made of
	// ("debian:trixie", "oci:DIR[:TAG]", "docker-archive:FILE",
	// "docker.io/library/postgres:16"; package image, docs/images.md), built or taken from the cache before any
	// machine boots. Empty: the host's root.
	Image string `spec:"image"`
	// Packages are, on an image machine, the Debian packages installed
	// into the image; on the host's root, packages that must be installed
	// on the host.
	Packages []string `spec:"packages"`
	// Services are started after Setup at every boot and supervised by the
	// agent.
	Services []agentproto.Service `spec:"services"`
	// Init is the guest's init: "" or InitFast (the default: vmlab's agent
	// is PID 1 and supervises Services itself) or InitSystemd (the root's
	// /lib/systemd/systemd is PID 1, the agent an early unit, Services are
	// rendered as units; see docs/systemd.md).
	Init string `spec:"init"`
	// Units are unit files the test declares, written to the guest's
	// /run/systemd/system before systemd loads them (init = "systemd"
	// only). A unit whose text has an [Install] section with WantedBy= or
	// RequiredBy= is enabled as systemctl enable would; the others start
	// only when asked for (start_job, systemctl) or pulled in by another.
	Units []UnitFile `spec:"units"`
	// Enable names units the root already has (a distribution package's,
	// such as "nfs-server.service") or Units declares, to start at boot:
	// they are wanted by multi-user.target (init = "systemd" only). The
	// host's own enabled units are not started in a guest unless named
	// here (or pulled in by a unit that is).
	Enable []string `spec:"enable"`
	// DiskMiB is the size of the machine's own disk, which holds its
	// writable root (what the guest writes anywhere but a share's host
	// files): it survives reboot(), crash() and shutdown() within a run,
	// and across runs with a state directory. Zero: DefaultDiskMiB.
	DiskMiB int `spec:"disk_size"`
	// Disks are extra empty disks, sizes in MiB: /dev/vda, /dev/vdb, ... in
	// the guest. They keep their contents across reboots.
	Disks []int `spec:"disks"`
	// Display gives the machine an emulated display (QEMU's standard VGA,
	// no window on the host) with the guest's framebuffer console on it
	// and a root shell on tty1 (fast mode and systemd): what screenshot and the
	// key methods need (docs/screens.md). Off, the machine has no display
	// and boots no slower.
	Display bool `spec:"display"`
	// QEMUArgs are appended to QEMU's command line.
	QEMUArgs []string `spec:"qemu_args"`
}

// Init values.
const (
	InitFast    = "fast"
	InitSystemd = "systemd"
)

// UnitFile is a systemd unit file declared by a test: its name
// ("web.service", "backup.timer") and its text.
type UnitFile = agentproto.UnitFile

// Systemd reports whether the machine boots the root's systemd.
func (m Machine) Systemd() bool { return m.Init == InitSystemd }

// Forward is a TCP port on the host's 127.0.0.1 (HostPort; 0 picks a free
// one) that reaches GuestPort on the machine's eth0.
type Forward struct {
	HostPort  int
	GuestPort int
}

// Share is a host directory shared into the guest.
type Share struct {
	HostPath  string
	GuestPath string
}

// Setup is what a machine's guest gets at every boot, before its first
// command: users and groups, files, kernel modules and sysctls.
type Setup struct {
	Groups  []string          `spec:"groups"`
	Users   []Account         `spec:"users"`
	Files   []File            `spec:"files"`
	Modules []string          `spec:"modules"` // loaded with modprobe
	Sysctls map[string]string `spec:"sysctls"` // e.g. "net.ipv4.ip_forward": "1"
}

// Account is a login account, created with a home directory.
type Account struct {
	Name   string
	Groups []string // supplementary groups (created if missing)
	Shell  string   // default /bin/sh
}

// File is a file written into the guest.
type File struct {
	Path    string
	Content string
	Mode    os.FileMode // default 0644
}

// New returns a declaration of the machine called name with the defaults a
// user may then change.
func New(name string) Machine {
	return Machine{Name: name, MemoryMiB: DefaultMemoryMiB, CPUs: 1, DiskMiB: DefaultDiskMiB}
}

// WithDefaults returns m with zero MemoryMiB, CPUs and DiskMiB replaced by
// the defaults, and UserNet on when ForwardPorts declares any (forwards go
// through it).
func (m Machine) WithDefaults() Machine {
	if len(m.ForwardPorts) > 0 {
		m.UserNet = true
	}
	if m.MemoryMiB == 0 {
		m.MemoryMiB = DefaultMemoryMiB
	}
	if m.CPUs == 0 {
		m.CPUs = 1
	}
	if m.DiskMiB == 0 {
		m.DiskMiB = DefaultDiskMiB
	}
	return m
}

// NetVLANs returns the VLANs the machine is on: VLANs, or [1] when nil.
func (m Machine) NetVLANs() []int {
	if m.VLANs == nil {
		return []int{1}
	}
	return m.VLANs
}
