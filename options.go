package vmlab

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/spec"
)

// Option configures a machine. Lab.Machine checks what the options
// declare, all of it at once, and fails the test naming the option at
// fault before anything boots; docs/test-files.md lists the rules (the
// same as for test files).
//
// An Option is opaque: the declaration it changes is vmlab's own.
type Option struct{ set func(*spec.Machine) }

// Memory sets the guest's memory in MiB (default 512).
func Memory(mib int) Option { return Option{func(s *spec.Machine) { s.MemoryMiB = mib }} }

// CPUs sets the guest's CPU count (default 1).
func CPUs(n int) Option { return Option{func(s *spec.Machine) { s.CPUs = n }} }

// Share makes the host directory hostPath visible at guestPath. The guest
// may write there; its writes stay in the guest.
func Share(hostPath, guestPath string) Option {
	return Option{func(s *spec.Machine) {
		s.Shares = append(s.Shares, spec.Share{HostPath: abs(hostPath), GuestPath: guestPath})
	}}
}

// VLANs puts the machine on these networks, in order: eth1, eth2, ... with
// 192.168.v.n and 2001:db8:v::n, n being its place among the lab's machines
// sorted by name. Without it a machine is on VLAN 1; VLANs() with no
// arguments means no network.
func VLANs(v ...int) Option {
	return Option{func(s *spec.Machine) { s.VLANs = append([]int{}, v...) }}
}

// UserNet gives the machine eth0, a user-mode NIC for ForwardPort only: it
// has no route out and cannot reach the host.
func UserNet() Option { return Option{func(s *spec.Machine) { s.UserNet = true }} }

// Display gives the machine an emulated display with the guest's
// framebuffer console on it and, in fast mode, a root shell on tty1, for
// Machine.Screenshot, SendKey and SendChars (docs/screens.md).
func Display() Option { return Option{func(s *spec.Machine) { s.Display = true }} }

// Forward makes TCP port hostPort on the host's 127.0.0.1 reach guestPort
// on the machine at every boot (NixOS's virtualisation.forwardPorts); it
// may be given several times and implies UserNet. A zero hostPort picks a
// free port at the machine's first boot and keeps it for the later ones;
// vmlab up and vmlab status show it (a test that must know the port uses
// Machine.ForwardPort(t, 0, guestPort), which returns it). A host port
// another process holds fails the boot, naming the port and the cause.
func Forward(hostPort, guestPort int) Option {
	return Option{func(s *spec.Machine) {
		s.ForwardPorts = append(s.ForwardPorts, spec.Forward{HostPort: hostPort, GuestPort: guestPort})
	}}
}

// Service is a program the machine's agent starts at every boot, after
// Users, Files, Modules and Sysctls are applied, and supervises without
// systemd (vmlab's fast mode); on a Systemd machine it runs as the unit
// NAME.service. Its output goes to the console log as "service NAME:
// line", or on a Systemd machine through the journal, which forwards it
// as "NAME[PID]: line" (after journald's uptime stamp). Machine.WaitForUnit
// waits until it is ready.
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
	return Option{func(s *spec.Machine) {
		for _, name := range slices.Sorted(maps.Keys(services)) {
			v := services[name]
			s.Services = append(s.Services, agentproto.Service{
				Name: name, Command: v.Command, User: v.User, Dir: v.Dir, Env: slices.Clone(v.Env),
				ReadyPort: v.ReadyPort, ReadyFile: v.ReadyFile, ReadyLog: v.ReadyLog, Restart: v.Restart,
			})
		}
	}}
}

// Systemd makes the root's systemd the machine's init (test files' init =
// "systemd"; docs/systemd.md): the agent comes up as an early unit, so
// commands work while the system boots, Services run as units
// (NAME.service), and only the units that Unit and Enable name start,
// with what they pull in. Without it the machine is in vmlab's fast mode:
// the agent is PID 1 and no unit runs. A root without /lib/systemd/systemd
// fails the test before anything boots.
func Systemd() Option { return Option{func(s *spec.Machine) { s.Init = spec.InitSystemd }} }

// Unit writes a unit file into a Systemd machine's /run/systemd/system
// before systemd loads it: name is the unit's ("web.service",
// "backup.timer"), text the file's. A unit whose [Install] section has
// WantedBy= or RequiredBy= is enabled as systemctl enable would; the
// others start when Enable names them, when asked (Machine.Systemctl), or
// when a unit pulls them in. A name of the root's own replaces that unit.
func Unit(name, text string) Option {
	return Option{func(s *spec.Machine) { s.Units = append(s.Units, spec.UnitFile{Name: name, Text: text}) }}
}

// Enable starts units at a Systemd machine's boot (wanted by
// multi-user.target): the root's, such as a Debian package's
// ("nfs-server", "redis-server.service"; a name without a type is a
// service), or Unit's. The host's own enabled units do not start in a
// guest unless named here. A name that neither has fails the test before
// anything boots, with the names it may mean.
func Enable(names ...string) Option {
	return Option{func(s *spec.Machine) { s.Enable = append(s.Enable, names...) }}
}

// Users creates login accounts with home directories (with the host's
// useradd) at every boot, before the machine's first command.
func Users(names ...string) Option {
	return Option{func(s *spec.Machine) {
		for _, n := range names {
			s.Setup.Users = append(s.Setup.Users, spec.Account{Name: n})
		}
	}}
}

// Groups creates groups at every boot.
func Groups(names ...string) Option {
	return Option{func(s *spec.Machine) { s.Setup.Groups = append(s.Setup.Groups, names...) }}
}

// File writes a file into the guest at every boot, before the machine's
// first command. A zero mode means 0644.
func File(path, content string, mode os.FileMode) Option {
	return Option{func(s *spec.Machine) {
		s.Setup.Files = append(s.Setup.Files, spec.File{Path: path, Content: content, Mode: mode})
	}}
}

// Modules loads kernel modules (modprobe) at every boot.
func Modules(names ...string) Option {
	return Option{func(s *spec.Machine) { s.Setup.Modules = append(s.Setup.Modules, names...) }}
}

// Sysctl sets a kernel parameter at every boot: Sysctl("net.ipv4.ip_forward", "1").
func Sysctl(key, value string) Option {
	return Option{func(s *spec.Machine) {
		if s.Setup.Sysctls == nil {
			s.Setup.Sysctls = make(map[string]string)
		}
		s.Setup.Sysctls[key] = value
	}}
}

// Packages names Debian packages (or programs) the test needs. On a
// machine with an Image they are installed into the image. Otherwise the
// guest's root is the host's, so they must be installed on the host; a
// missing one fails the test before anything boots, naming the machine
// and the package.
func Packages(names ...string) Option {
	return Option{func(s *spec.Machine) { s.Packages = append(s.Packages, names...) }}
}

// Image makes the machine's root the machine image ref ("debian:trixie",
// "oci:DIR[:TAG]", "docker-archive:FILE", or a registry reference naming
// its registry, "docker.io/library/postgres:16") instead of the host's:
// built, pulled or taken from the cache, before any machine boots
// (docs/images.md).
func Image(ref string) Option {
	return Option{func(s *spec.Machine) { s.Image = ref }}
}

// Disks adds empty disks of these sizes in MiB: /dev/vda, /dev/vdb, ... in
// the guest. They keep their contents across reboots.
func Disks(sizesMiB ...int) Option {
	return Option{func(s *spec.Machine) { s.Disks = append(s.Disks, sizesMiB...) }}
}

// DiskSize sets the size in MiB of the machine's own disk, which holds its
// writable root: what the guest writes survives Reboot, Crash + Start and
// Shutdown + Start. The default is 4096 MiB, a sparse file.
func DiskSize(mib int) Option {
	return Option{func(s *spec.Machine) { s.DiskMiB = mib }}
}

// QEMUArgs appends arguments to the machine's QEMU command line.
func QEMUArgs(args ...string) Option {
	return Option{func(s *spec.Machine) { s.QEMUArgs = append(s.QEMUArgs, args...) }}
}

// LabOption configures a lab (New).
type LabOption struct{ set func(*Lab) }

// KeepState keeps the machines' disks, and so everything their guests wrote
// outside the shares' host files, in dir across runs: dir/NAME.img for each
// machine, reused by the next run of the same test (dir records the test's
// package directory and name, and refuses another test's machines). Without
// it each machine's disk is temporary. A directory of another test or
// vmlab format, one in use, or a damaged image fails the test before
// anything boots, saying what to do; nothing in dir is ever deleted.
func KeepState(dir string) LabOption {
	return LabOption{func(l *Lab) { l.stateDir = abs(dir) }}
}

// Coverage collects the coverage of every command and service the lab's
// machines run, as vmlab run -coverage does (docs/coverage.md): Go
// binaries built with -cover and C or C++ ones built with --coverage write
// their data to dir/raw/TEST/MACHINE, TEST being the test's name with "_"
// for "/". A directory that cannot be written, or that holds this test's
// data from an earlier run, fails the test before anything boots.
func Coverage(dir string) LabOption {
	return LabOption{func(l *Lab) { l.coverDir = abs(dir) }}
}

// abs makes a share's host path absolute (relative to the working
// directory, the test's package), keeping it as it is when that fails.
func abs(path string) string {
	if p, err := filepath.Abs(path); err == nil {
		return p
	}
	return path
}

// optionNames name the option that sets each field of the declaration
// (spec.Machine's keywords), so a problem can say which option is wrong.
var optionNames = map[string]string{
	"name": "Lab.Machine", "memory": "Memory", "cpus": "CPUs", "vlans": "VLANs", "user_net": "UserNet",
	"shares": "Share", "users": "Users", "groups": "Groups", "files": "File", "modules": "Modules",
	"sysctls": "Sysctl", "packages": "Packages", "services": "Services", "disks": "Disks", "qemu_args": "QEMUArgs",
	"disk_size": "DiskSize", "forward_ports": "Forward", "init": "Systemd", "units": "Unit", "enable": "Enable",
	"display": "Display", "image": "Image",
}

// checkDeclaration returns the problems of a machine declared after others,
// each naming the option at fault.
func checkDeclaration(decl spec.Machine, others []spec.Machine, host spec.Host) []error {
	var errs []error
	for _, p := range decl.Check(host) {
		errs = append(errs, fmt.Errorf("vmlab.%s: %w", optionNames[p.Field], p))
	}
	for _, p := range spec.CheckLab(append(others[:len(others):len(others)], decl)) {
		switch {
		case p.Index != len(others):
		case p.Field == "" || p.Field == "name":
			errs = append(errs, fmt.Errorf("vmlab: %w", p))
		default:
			errs = append(errs, fmt.Errorf("vmlab.%s: %w", optionNames[p.Field], p))
		}
	}
	return errs
}
