package vmlab

import (
	"maps"
	"os"
	"slices"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
)

// Option configures a machine.
type Option func(*lab.Spec)

// Memory sets the guest's memory in MiB (default 512).
func Memory(mib int) Option { return func(s *lab.Spec) { s.Machine.MemoryMiB = mib } }

// CPUs sets the guest's CPU count (default 1).
func CPUs(n int) Option { return func(s *lab.Spec) { s.Machine.CPUs = n } }

// Share makes the host directory hostPath visible at guestPath. The guest
// may write there; its writes stay in the guest.
func Share(hostPath, guestPath string) Option {
	return func(s *lab.Spec) {
		s.Machine.Shares = append(s.Machine.Shares, machine.Share{HostPath: hostPath, GuestPath: guestPath})
	}
}

// VLANs puts the machine on these networks, in order: eth1, eth2, ... with
// 192.168.v.n and 2001:db8:v::n, n being its place among the lab's machines
// sorted by name. Without it a machine is on VLAN 1; VLANs() with no
// arguments means no network.
func VLANs(v ...int) Option {
	return func(s *lab.Spec) { s.VLANs = append([]int{}, v...) }
}

// UserNet gives the machine eth0, a user-mode NIC for ForwardPort only: it
// has no route out and cannot reach the host.
func UserNet() Option { return func(s *lab.Spec) { s.UserNet = true } }

// Service is a program the machine's agent starts at every boot, after
// Users, Files, Modules and Sysctls are applied, and supervises without
// systemd (vmlab's fast mode). Its output goes to the console log as
// "service NAME: line". Machine.WaitForUnit waits until it is ready.
type Service struct {
	Command string   // run with /bin/sh -c
	User    string   // default root
	Dir     string   // working directory; default /
	Env     []string // "KEY=value", added to the default environment
	// The service is ready when the TCP port ReadyPort accepts on
	// localhost, when ReadyFile exists, or when a line of its output
	// matches the regular expression ReadyLog; with none of them, once it
	// has started.
	ReadyPort int
	ReadyFile string
	ReadyLog  string
	// Restart is "no" (the default), "on-failure" or "always".
	Restart string
}

// Services declares the machine's services by name (the names WaitForUnit
// takes). A declaration that is wrong (no command, an unknown restart
// policy) fails the test before anything boots.
func Services(services map[string]Service) Option {
	return func(s *lab.Spec) {
		for _, name := range slices.Sorted(maps.Keys(services)) {
			v := services[name]
			s.Machine.Services = append(s.Machine.Services, agentproto.Service{
				Name: name, Command: v.Command, User: v.User, Dir: v.Dir, Env: slices.Clone(v.Env),
				ReadyPort: v.ReadyPort, ReadyFile: v.ReadyFile, ReadyLog: v.ReadyLog, Restart: v.Restart,
			})
		}
	}
}

// Users creates login accounts with home directories (with the host's
// useradd) at every boot, before the machine's first command.
func Users(names ...string) Option {
	return func(s *lab.Spec) {
		for _, n := range names {
			s.Machine.Setup.Users = append(s.Machine.Setup.Users, machine.Account{Name: n})
		}
	}
}

// Groups creates groups at every boot.
func Groups(names ...string) Option {
	return func(s *lab.Spec) { s.Machine.Setup.Groups = append(s.Machine.Setup.Groups, names...) }
}

// File writes a file into the guest at every boot, before the machine's
// first command. A zero mode means 0644.
func File(path, content string, mode os.FileMode) Option {
	return func(s *lab.Spec) {
		s.Machine.Setup.Files = append(s.Machine.Setup.Files, machine.File{Path: path, Content: content, Mode: mode})
	}
}

// Modules loads kernel modules (modprobe) at every boot.
func Modules(names ...string) Option {
	return func(s *lab.Spec) { s.Machine.Setup.Modules = append(s.Machine.Setup.Modules, names...) }
}

// Sysctl sets a kernel parameter at every boot: Sysctl("net.ipv4.ip_forward", "1").
func Sysctl(key, value string) Option {
	return func(s *lab.Spec) {
		if s.Machine.Setup.Sysctls == nil {
			s.Machine.Setup.Sysctls = make(map[string]string)
		}
		s.Machine.Setup.Sysctls[key] = value
	}
}

// Packages names Debian packages (or programs) the test needs. The guest's
// root is the host's, so they must be installed on the host; a missing one
// fails the test before anything boots, naming the machine and the package.
func Packages(names ...string) Option {
	return func(s *lab.Spec) { s.Machine.Packages = append(s.Machine.Packages, names...) }
}

// Disks adds empty disks of these sizes in MiB: /dev/vda, /dev/vdb, ... in
// the guest. They keep their contents across reboots.
func Disks(sizesMiB ...int) Option {
	return func(s *lab.Spec) { s.Machine.Disks = append(s.Machine.Disks, sizesMiB...) }
}

// QEMUArgs appends arguments to the machine's QEMU command line.
func QEMUArgs(args ...string) Option {
	return func(s *lab.Spec) { s.Machine.ExtraArgs = append(s.Machine.ExtraArgs, args...) }
}
