package spec

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/image"
)

// Problem is one thing wrong with a declaration.
type Problem struct {
	// Machine is the machine's name as declared (it may be the problem).
	Machine string
	// Field is the keyword of the field at fault ("memory", "files", ...),
	// or "" when the problem is the machine as a whole (one too many).
	Field string
	// Index is the machine's place in the list CheckLab was given.
	Index int
	Err   error
}

func (p Problem) Error() string {
	if p.Machine == "" {
		return p.Err.Error()
	}
	return fmt.Sprintf("machine %s: %v", p.Machine, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// Join returns the problems as one error, nil when there are none.
func Join(ps []Problem) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// checker collects one machine's problems.
type checker struct {
	m        *Machine
	problems []Problem
}

func (c *checker) add(field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Machine: c.m.Name, Field: field, Err: fmt.Errorf(format, args...)})
}

// Check returns every problem with m, checked against what host offers.
// It reads the host (its memory, module tree, sysctls, packages, shared
// directories) but changes nothing.
func (m Machine) Check(host Host) []Problem {
	c := &checker{m: &m}
	c.name()
	c.resources(host)
	c.vlans()
	c.forwards()
	c.shares()
	c.accounts()
	c.files()
	c.modules(host)
	c.sysctls(host)
	c.image()
	c.packages(host)
	c.services()
	c.init(host)
	c.systemdOnly()
	c.units()
	c.serviceUnits()
	c.enable(host)
	c.disks()
	c.display(host)
	return c.problems
}

// nameRule is what a machine name may be: a host name label, so it is safe
// as the guest's host name and as a directory name on the host.
var nameRule = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// NameRule says in words what a machine name may be.
const NameRule = "letters, digits, '-' and '_', 1 to 63 of them"

func (c *checker) name() {
	if !nameRule.MatchString(c.m.Name) {
		c.problems = append(c.problems, Problem{Field: "name",
			Err: fmt.Errorf("machine name %q: a machine name is a host name: %s", c.m.Name, NameRule)})
	}
}

func (c *checker) resources(host Host) {
	mem, cpus := c.m.MemoryMiB, c.m.CPUs
	switch {
	case mem < MinMemoryMiB:
		c.add("memory", "memory %d MiB: a guest needs at least %d MiB to boot", mem, MinMemoryMiB)
	case host.MemoryMiB > 0 && mem > host.MemoryMiB:
		c.add("memory", "memory %d MiB: more than the host's %d MiB", mem, host.MemoryMiB)
	}
	switch {
	case cpus < 1:
		c.add("cpus", "cpus %d: want at least 1", cpus)
	case host.CPUs > 0 && cpus > host.CPUs:
		c.add("cpus", "cpus %d: more than the host's %d", cpus, host.CPUs)
	}
}

func (c *checker) vlans() {
	seen := make(map[int]bool)
	for _, v := range c.m.VLANs {
		if v < 1 || v > MaxVLAN {
			c.add("vlans", "VLAN %d is out of range (1..%d)", v, MaxVLAN)
		}
		if seen[v] {
			c.add("vlans", "VLAN %d is listed twice", v)
		}
		seen[v] = true
	}
}

func (c *checker) forwards() {
	hosts, guests := make(map[int]bool), make(map[int]bool)
	for _, f := range c.m.ForwardPorts {
		what := fmt.Sprintf("forward %d -> %d", f.HostPort, f.GuestPort)
		switch {
		case f.HostPort < 0 || f.HostPort > 65535:
			c.add("forward_ports", "%s: host port %d: want 1 to 65535, or 0 for a free one", what, f.HostPort)
		case f.HostPort > 0 && hosts[f.HostPort]:
			c.add("forward_ports", "%s: host port %d is forwarded twice", what, f.HostPort)
		}
		switch {
		case f.GuestPort < 1 || f.GuestPort > 65535:
			c.add("forward_ports", "%s: guest port %d: want 1 to 65535", what, f.GuestPort)
		case guests[f.GuestPort]:
			c.add("forward_ports", "%s: guest port %d is forwarded to twice", what, f.GuestPort)
		}
		hosts[f.HostPort], guests[f.GuestPort] = true, true
	}
}

func (c *checker) shares() {
	for _, s := range c.m.Shares {
		if !filepath.IsAbs(s.GuestPath) {
			c.add("shares", "share %s -> %s: the guest path must be absolute", s.HostPath, s.GuestPath)
		}
		if !filepath.IsAbs(s.HostPath) {
			c.add("shares", "share %s -> %s: the host path must be absolute", s.HostPath, s.GuestPath)
			continue
		}
		fi, err := os.Stat(s.HostPath)
		switch {
		case err != nil:
			c.add("shares", "share %s: no such host directory", s.HostPath)
		case !fi.IsDir():
			c.add("shares", "share %s: not a directory (shares are directories)", s.HostPath)
		}
	}
}

// accountRule is Debian's rule for user and group names (adduser's
// NAME_REGEX and useradd's check): lower case, a letter or '_' first, an
// optional '$' last (machine accounts).
var accountRule = regexp.MustCompile(`^[a-z_][a-z0-9_-]*[$]?$`)

// AccountRule says in words what a user or group name may be.
const AccountRule = "a lower-case letter or '_', then lower-case letters, digits, '_' or '-', an optional final '$', at most 32 characters (useradd's rule)"

func badAccount(name string) bool {
	return len(name) > MaxAccountLen || !accountRule.MatchString(name)
}

func (c *checker) accounts() {
	for _, g := range c.m.Setup.Groups {
		if badAccount(g) {
			c.add("groups", "group %q: want %s", g, AccountRule)
		}
	}
	seen := make(map[string]bool)
	for _, u := range c.m.Setup.Users {
		if badAccount(u.Name) {
			c.add("users", "user %q: want %s", u.Name, AccountRule)
		}
		if seen[u.Name] {
			c.add("users", "user %q is declared twice", u.Name)
		}
		seen[u.Name] = true
		for _, g := range u.Groups {
			if badAccount(g) {
				c.add("users", "user %s: group %q: want %s", u.Name, g, AccountRule)
			}
		}
		if u.Shell != "" && !filepath.IsAbs(u.Shell) {
			c.add("users", "user %s: shell %q: want an absolute path", u.Name, u.Shell)
		}
	}
}

func (c *checker) files() {
	seen := make(map[string]bool)
	for _, f := range c.m.Setup.Files {
		if !filepath.IsAbs(f.Path) {
			c.add("files", "file %q: want an absolute guest path", f.Path)
		}
		if seen[f.Path] {
			c.add("files", "file %s is declared twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^0o7777 != 0 {
			c.add("files", "file %s: mode 0o%o is not a file mode (want 0 to 0o7777, such as 0o755)", f.Path, uint32(f.Mode))
		}
	}
}

func (c *checker) modules(host Host) {
	if len(c.m.Setup.Modules) == 0 {
		return
	}
	known, err := host.modules()
	if err != nil {
		c.add("modules", "%v", err)
		return
	}
	for _, name := range c.m.Setup.Modules {
		if known != nil && !known.has(name) {
			c.add("modules", "kernel module %q: the kernel the machines boot (%s) has no such module", name, host.Modules)
		}
	}
}

func (c *checker) sysctls(host Host) {
	if host.Sysctls == "" {
		return
	}
	// A declared module that the host has not loaded may add sysctls the
	// host's /proc/sys lacks (nf_conntrack adds net.netfilter.*): then an
	// unknown sysctl cannot be told from a module's.
	for _, mod := range c.m.Setup.Modules {
		if !host.loaded(mod) {
			return
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.m.Setup.Sysctls)) {
		if err := host.sysctl(key); err != nil {
			c.add("sysctls", "%v", err)
		}
	}
}

// image checks the image reference. The image itself is built or found
// in the cache later (lab.PrepareImages), before any machine boots.
func (c *checker) image() {
	if c.m.Image == "" {
		return
	}
	if _, err := image.ParseRef(c.m.Image); err != nil {
		c.add("image", "%v", err)
	}
}

// packages checks that a host-root machine's packages are installed on
// the host. An image machine's go into its image: the image's build
// names one its archive lacks.
func (c *checker) packages(host Host) {
	if host.Installed == nil || c.m.Image != "" {
		return
	}
	var missing []string
	for _, p := range c.m.Packages {
		if !host.Installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		c.add("packages", "package %s not installed on the host, and the machine's root is the host's (apt-get install %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
}

func (c *checker) services() {
	seen := make(map[string]bool)
	for _, s := range c.m.Services {
		if err := CheckService(s); err != nil {
			c.add("services", "%v", err)
		}
		if s.Name != "" && seen[s.Name] {
			c.add("services", "service %q is declared twice", s.Name)
		}
		seen[s.Name] = true
	}
}

// CheckService reports what is wrong with a service's declaration: no name,
// no command, a restart policy other than "no" (or empty), "on-failure" and
// "always", a port out of range, a relative directory, a readiness pattern
// that is not a regular expression.
func CheckService(s agentproto.Service) error {
	switch {
	case s.Name == "":
		return errors.New("service with no name")
	case strings.TrimSpace(s.Command) == "":
		return fmt.Errorf("service %q: no command", s.Name)
	case s.ReadyPort < 0 || s.ReadyPort > 65535:
		return fmt.Errorf("service %q: ready port %d: want 1 to 65535", s.Name, s.ReadyPort)
	case s.Dir != "" && !filepath.IsAbs(s.Dir):
		return fmt.Errorf("service %q: dir %q: want an absolute guest path", s.Name, s.Dir)
	}
	if _, err := regexp.Compile(s.ReadyLog); err != nil {
		return fmt.Errorf("service %q: wait_for_log: %w", s.Name, err)
	}
	switch s.Restart {
	case "", "no", "on-failure", "always":
		return nil
	}
	return fmt.Errorf("service %q: restart %q: want \"no\", \"on-failure\" or \"always\"", s.Name, s.Restart)
}

func (c *checker) disks() {
	if size := c.m.DiskMiB; size < MinDiskMiB || size > MaxDiskMiB {
		c.add("disk_size", "disk_size %d MiB: want %d to %d MiB", size, MinDiskMiB, MaxDiskMiB)
	}
	for i, size := range c.m.Disks {
		if size <= 0 || size > MaxDiskMiB {
			c.add("disks", "disk %d: size %d MiB: want 1 to %d MiB", i, size, MaxDiskMiB)
		}
	}
}

// CheckLab returns what is wrong with a set of machines as a whole: more
// than MaxMachines, a name declared twice, a host port forwarded by two
// machines. Each problem's Index is the machine at fault (the second of
// two with one name or host port).
func CheckLab(ms []Machine) []Problem {
	var ps []Problem
	if len(ms) > MaxMachines {
		ps = append(ps, Problem{Index: MaxMachines,
			Err: fmt.Errorf("%d machines declared; a lab holds at most %d", len(ms), MaxMachines)})
	}
	seen := make(map[string]bool)
	for i, m := range ms {
		if seen[m.Name] {
			ps = append(ps, Problem{Field: "name", Index: i, Err: fmt.Errorf("machine %q is declared twice", m.Name)})
		}
		seen[m.Name] = true
	}
	return append(ps, labForwards(ms)...)
}

// labForwards reports each host port that a machine forwards after
// another one did: the host has one 127.0.0.1.
func labForwards(ms []Machine) []Problem {
	var ps []Problem
	owner := make(map[int]string)
	for i, m := range ms {
		mine := make(map[int]bool)
		for _, f := range m.ForwardPorts {
			if f.HostPort == 0 || mine[f.HostPort] {
				continue
			}
			mine[f.HostPort] = true
			if other, ok := owner[f.HostPort]; ok {
				ps = append(ps, Problem{Machine: m.Name, Field: "forward_ports", Index: i,
					Err: fmt.Errorf("host port %d is forwarded by machine %s too: give one of them another port (or 0 for a free one)", f.HostPort, other)})
				continue
			}
			owner[f.HostPort] = m.Name
		}
	}
	return ps
}

// CheckAll returns CheckLab's problems and every machine's, each with its
// Index.
func CheckAll(ms []Machine, host Host) []Problem {
	var ps []Problem
	for i, m := range ms {
		for _, p := range m.Check(host) {
			p.Index = i
			ps = append(ps, p)
		}
	}
	return append(ps, CheckLab(ms)...)
}

// DisplayModule is the DRM driver of the emulated display (QEMU's standard
// VGA) that machines with Display load.
const DisplayModule = "bochs"

func (c *checker) display(host Host) {
	if c.m.Display && !host.HasModule(DisplayModule) {
		c.add("display", "display: the kernel the machines boot (%s) has no %s module, the driver of the emulated display: boot a kernel built with CONFIG_DRM_BOCHS", host.Modules, DisplayModule)
	}
}
