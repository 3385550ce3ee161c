package spec

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/kernel"
)

// Host is what Check needs to know of the host and of the kernel the
// machines boot. A zero field is not checked, but for Systemd: false
// refuses init = "systemd".
type Host struct {
	MemoryMiB int // the host's memory (MemTotal)
	CPUs      int // the host's CPUs
	// Modules is the module tree of the kernel the machines boot
	// (/lib/modules/<release>).
	Modules string
	// Sysctls is the /proc/sys to look sysctls up in: the host's, and only
	// when the machines boot the kernel the host runs (the guest's tree
	// mirrors it then; another release has other settings).
	Sysctls string
	// Loaded is where the host's kernel lists its loaded modules
	// (/sys/module), set with Sysctls: a declared module that is not
	// loaded there may add sysctls the host lacks.
	Loaded string
	// Installed reports whether a package is installed on the host.
	Installed func(pkg string) bool
	// Units lists the system units of the root the machines share
	// (SystemUnits); nil: unit names are not checked.
	Units func() []string
	// Systemd says whether that root has SystemdPath, which init =
	// "systemd" boots.
	Systemd bool
}

// HostFor describes the running host for machines that boot the kernel of
// this release, with this module tree.
func HostFor(release, modules string) Host {
	h := Host{MemoryMiB: hostMemoryMiB(), CPUs: runtime.NumCPU(), Modules: modules, Installed: Installed,
		Units: hostUnits, Systemd: isExecutable(SystemdPath)}
	if running, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil && release != "" &&
		strings.TrimSpace(string(running)) == release {
		h.Sysctls, h.Loaded = "/proc/sys", "/sys/module"
	}
	return h
}

// LocalHost describes the running host for machines that boot the kernel
// vmlab picks by default (kernel.Find): the one a test file gets unless the
// CLI is told otherwise. Without a kernel, modules are not checked.
func LocalHost() Host {
	localOnce.Do(func() {
		release, modules := "", ""
		if image, err := kernel.Find(""); err == nil {
			release = strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
			modules = filepath.Join("/lib/modules", release)
		}
		local = HostFor(release, modules)
	})
	return local
}

var (
	localOnce sync.Once
	local     Host
)

// hostMemoryMiB reads MemTotal from /proc/meminfo; 0 when unknown.
func hostMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb / 1024
		}
	}
	return 0
}

// dpkgInfo is where dpkg records installed packages' files, and
// dpkgStatus their state and what each provides.
var (
	dpkgInfo   = "/var/lib/dpkg/info"
	dpkgStatus = "/var/lib/dpkg/status"
)

// Installed reports whether a package is installed on the host: dpkg knows
// it, an installed package provides it (postgresql-client-15 provides
// postgresql-client, the name users type), or a program of that name is on
// the standard PATH (for hosts without dpkg).
func Installed(pkg string) bool {
	if pkg == "" || strings.ContainsRune(pkg, '/') {
		return false
	}
	for _, f := range []string{pkg + ".list", pkg + ":amd64.list"} {
		if _, err := os.Stat(filepath.Join(dpkgInfo, f)); err == nil {
			return true
		}
	}
	if provided(pkg) {
		return true
	}
	for _, dir := range filepath.SplitList(agentproto.DefaultPath) {
		if _, err := os.Stat(filepath.Join(dir, pkg)); err == nil {
			return true
		}
	}
	return false
}

// provided reports whether an installed package lists pkg in its Provides
// (dpkg's status file: paragraphs of "Field: value" lines).
func provided(pkg string) bool {
	f, err := os.Open(dpkgStatus)
	if err != nil {
		return false
	}
	defer f.Close()
	installed, provides := false, false
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20) // long Description lines
	for s.Scan() {
		line := s.Text()
		switch {
		case line == "":
			installed, provides = false, false
		case strings.HasPrefix(line, "Status:"):
			installed = strings.HasSuffix(line, " installed")
		case strings.HasPrefix(line, "Provides:"):
			provides = providesName(strings.TrimPrefix(line, "Provides:"), pkg)
		}
		if installed && provides {
			return true
		}
	}
	return false
}

// providesName reports whether a Provides list ("a (= 1), b") names pkg.
func providesName(list, pkg string) bool {
	for _, p := range strings.Split(list, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(p), " ")
		if name == pkg {
			return true
		}
	}
	return false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
