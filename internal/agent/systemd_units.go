package agent

// What a systemd guest's /run holds before systemd starts: the agent's unit
// and its link from the boot target, vmlab's masks and settings (the
// machine's own units come with the host's OpServices, systemd_install.go). This file is the one list of
// them; docs/systemd.md ("How a systemd guest boots") explains it with the
// figures measured under TCG.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

const (
	// systemdPath is the root's systemd (spec.SystemdPath, which the
	// agent does not import: spec pulls the kernel package into the
	// guest's binary).
	systemdPath = "/lib/systemd/systemd"
	// bootTarget is the unit systemd starts (--unit=), whatever the
	// root's default.target: the machine's units are in place by then
	// (the handover, systemd.go), so nothing it pulls in misses them.
	bootTarget = "multi-user.target"
	// agentUnit runs this binary again, as the agent that serves the host.
	agentUnit = "vmlab-agent.service"
	// runDir holds the agent's copy of itself, its lazy modules and the
	// boot stages the PID-1 agent measured.
	runDir = "/run/vmlab"
	// unitDir is where vmlab's units, masks and enablement links go:
	// /run/systemd/system ranks above the distribution's directories
	// (below /etc's, the administrator's: agentproto.UnitDirs), and is
	// gone at the next boot, which writes them again from the declaration.
	unitDir = "/" + agentproto.RunUnitDir
	// defaultTarget is vmlab's link to multi-user.target in unitDir.
	defaultTarget = "default.target"
)

// networkTargets are wanted by multi-user.target in a systemd guest.
var networkTargets = []string{"network.target", "network-online.target"}

// agentUnitText is vmlab-agent.service. DefaultDependencies=no: it starts
// first, before sysinit.target, and is not stopped at shutdown (no
// Conflicts=shutdown.target), so the host keeps its channel until
// systemd-shutdown ends every process. Output goes to the console (the
// journal is not up when it starts; StandardOutput=journal fails then).
// The agent is not restarted: the host's session (its requests in flight,
// the hello it had) dies with it, and a restarted agent's hello (after the
// handover's, the third) would break the channel. Its end, a failure (fatal, a crash, a
// SIGKILL) or not (SIGTERM, systemctl stop), powers the machine off
// instead, as fatal does in fast mode: the host sees QEMU exit, with the
// reason on the console, rather than a protocol error. poweroff-force
// skips the units' stop but not systemd-shutdown's killing, syncing and
// unmounting. IgnoreSIGPIPE=no: the commands it starts inherit the agent's
// dispositions, and `yes | head` must end by SIGPIPE as on any shell.
// IgnoreOnIsolate=yes: `systemctl isolate rescue.target` in a test keeps
// the agent (and so the machine) up. TasksMax=infinity: the commands live in this unit's cgroup, which must
// not cap a test at systemd's default of 15% of pid_max.
var agentUnitText = `[Unit]
Description=vmlab agent: serves the host on the virtio-serial port
DefaultDependencies=no
IgnoreOnIsolate=yes
FailureAction=poweroff-force
SuccessAction=poweroff-force

[Service]
Environment=` + unitEnv + `=1
ExecStart=` + runDir + `/agent
IgnoreSIGPIPE=no
TasksMax=infinity
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
`

// consoleUnit runs a root login shell on tty1 of a systemd guest with a
// display (display.go runs it in fast mode): what keys typed on the
// display (send_chars) reach.
const consoleUnit = "vmlab-console.service"

// consoleUnitText is consoleUnit for shell: the fast-mode shell's
// equivalent, as a unit rather than a getty. A root autologin getty on
// tty1 would run login(1), whose PAM session asks logind over D-Bus:
// dbus.service alone takes 4.7 s to start under TCG (unwantedLinks), and
// the shell would come after it, with a motd in front. This unit needs
// neither.
//
//   - DefaultDependencies=no and Before= the agent: it starts with
//     systemd's first jobs, and the agent that ends the boot (its hello)
//     starts once the shell has tty1 open (Type=exec: started means
//     exec'd, and systemd opens the terminal before it execs). Keys typed
//     on a virtual terminal nobody has open are lost.
//   - StandardInput=tty-force: the shell takes tty1 even if a process
//     holds it; "tty" would wait for it, and the agent (and so the boot)
//     with it.
//   - Restart=always, as getty and the fast-mode shell: a test that types
//     "exit" gets a new shell. A shell that fails at once is given up
//     after 5 starts in 1 s (fast mode: 5 quick exits in a row).
//   - TTYVHangup and TTYReset, as getty's: the next shell starts on a
//     terminal without the last one's processes or modes; the screen is
//     not cleared (TTYVTDisallocate=no), so its text stays for a test
//     to read.
//   - IgnoreSIGPIPE=no: `yes | head` typed there ends as on any shell.
func consoleUnitText(sh shell) string {
	return `[Unit]
Description=vmlab console: a root shell on tty1 for keys typed on the display
DefaultDependencies=no
Before=` + agentUnit + `
StartLimitIntervalSec=1s
StartLimitBurst=5

[Service]
Type=exec
ExecStart=` + strings.Join(append([]string{sh.path}, sh.opts...), " ") + `
Restart=always
RestartSec=0
User=root
WorkingDirectory=-~
Environment=TERM=linux
IgnoreSIGPIPE=no
StandardInput=tty-force
StandardOutput=tty
StandardError=tty
TTYPath=` + consoleTTY + `
TTYReset=yes
TTYVHangup=yes
`
}

// tty1Units are the root's units that put a login on tty1 themselves: a
// test that names one (enable = ["getty@tty1"]) has its own login there,
// and consoleUnit is not started (installUnits).
var tty1Units = []string{"getty@tty1.service", "autovt@tty1.service"}

// settings are systemd's configuration drop-ins, by path under /run.
var settings = map[string]string{
	// The journal reaches the serial console, hence the machine's console
	// log and the reports. Volatile: the console log is the record, and a
	// kept disk's /var/log/journal would cost a flush at every boot.
	"systemd/journald.conf.d/vmlab.conf": "[Journal]\nForwardToConsole=yes\nMaxLevelConsole=info\nStorage=volatile\n",
	// A unit that does not stop in stopTimeout is killed: a shutdown never
	// waits systemd's default 90 s per unit.
	"systemd/system.conf.d/vmlab.conf": "[Manager]\nDefaultTimeoutStopSec=" + stopTimeout + "\n",
}

// stopTimeout is DefaultTimeoutStopSec in a systemd guest.
const stopTimeout = "10s"

// bootMasks are the units a systemd guest does not start unless the test
// names them (in Units or Enable, or as a service): each is pulled in by
// sysinit.target, basic.target or multi-user.target through the
// distribution's static links, costs boot time under emulation and serves
// no purpose in a test machine. Masks are links to /dev/null in unitDir;
// naming a unit removes its mask (and its template's), and those of the
// units it needs (unmaskNeeds). Figures: guest uptime at
// multi-user.target, TCG, see docs/systemd.md.
var bootMasks = []struct{ unit, why string }{
	// udev coldplug loads a module for every emulated device (ahci, i2c,
	// kvm, ...): 6.3 s of CPU. vmlab loads the modules the guest needs
	// itself. Without udev, device units do not appear: a test that
	// needs them enables systemd-udev-trigger.service, which wants
	// systemd-udevd.service, which takes the two sockets.
	{"systemd-udev-trigger.service", "udev coldplug: a module load per emulated device"},
	{"systemd-udevd.service", "udev coldplug: a module load per emulated device"},
	{"systemd-udevd-control.socket", "udev coldplug: a module load per emulated device"},
	{"systemd-udevd-kernel.socket", "udev coldplug: a module load per emulated device"},
	{"systemd-udev-settle.service", "udev coldplug: a module load per emulated device"},
	// Logins on the console would write over the console log.
	{"getty.target", "a login prompt on the serial console"},
	{"getty-static.service", "a login prompt on the serial console"},
	{"getty@.service", "a login prompt on the serial console"},
	{"serial-getty@.service", "a login prompt on the serial console"},
	{"console-getty.service", "a login prompt on the serial console"},
	// The clock is the host's (kvmclock, or QEMU's RTC): nothing to sync.
	{"systemd-timesyncd.service", "the guest's clock is the host's"},
	// Periodic jobs of a long-lived system: a test is minutes long.
	{"systemd-tmpfiles-clean.timer", "periodic cleanup of a long-lived system"},
	{"e2scrub_all.timer", "periodic cleanup of a long-lived system"},
	{"e2scrub_reap.service", "periodic cleanup of a long-lived system"},
	// binfmt_misc: foreign executables are not a test's business.
	{"systemd-binfmt.service", "foreign executable formats"},
	{"proc-sys-fs-binfmt_misc.automount", "foreign executable formats"},
	{"proc-sys-fs-binfmt_misc.mount", "foreign executable formats"},
	// The sysctls are the test's (Setup applies them before systemd reaches
	// sysinit.target): the root's sysctl.d must not override them. Same for
	// the modules: the host's modules-load.d lists the host's.
	{"systemd-sysctl.service", "the declared sysctls are the test's; sysctl.d would override them"},
	{"systemd-modules-load.service", "the host's modules-load.d; the test declares its modules"},
	{"modprobe@.service", "modules for the masked mounts and for udev"},
	// The accounts are the host's, there already: sysusers finds nothing
	// to do, in 2 s under TCG.
	{"systemd-sysusers.service", "the host's accounts are there already"},
	// Device nodes: devtmpfs makes those of the drivers loaded; the static
	// ones (modules' nodes that load them on open) are not made in fast
	// mode either.
	{"kmod-static-nodes.service", "static device nodes, as in fast mode"},
	{"systemd-tmpfiles-setup-dev.service", "static device nodes, as in fast mode"},
	// API file systems fast mode does not mount either: ~2 s each under
	// TCG, run in parallel.
	{"dev-hugepages.mount", "not mounted in fast mode either"},
	{"dev-mqueue.mount", "not mounted in fast mode either"},
	{"sys-kernel-debug.mount", "not mounted in fast mode either"},
	{"sys-kernel-tracing.mount", "not mounted in fast mode either"},
	{"sys-kernel-config.mount", "not mounted in fast mode either"},
	{"sys-fs-fuse-connections.mount", "not mounted in fast mode either"},
	// State a long-lived system keeps across boots; the journal is
	// volatile (settings), so there is nothing to flush.
	{"systemd-random-seed.service", "the kernel seeds itself; a test machine keeps no seed"},
	{"systemd-journal-flush.service", "the journal is volatile"},
	{"systemd-update-utmp.service", "boot records in wtmp"},
	{"systemd-update-utmp-runlevel.service", "boot records in wtmp"},
}

// A systemd guest runs no generator: each is masked by a link to /dev/null
// in /run/systemd/system-generators. systemd's own turn the host's
// configuration into units (its /etc/fstab, its init scripts and their
// runlevel links, gettys, its disks' partitions and encryption); the
// packages' (nfs-server-generator, postgresql-generator,
// rpc-pipefs-generator) add dependencies and instances. Measured under
// TCG: 13 of systemd's cost ~1.5 s of boot, the 3 packages' 0.3-1 s more,
// and all of them run again at every daemon-reload (0.04 s with none). A
// test names the instance it wants ("postgresql@15-main.service") instead
// of the unit a generator would have completed.

// generatorDirs are where a root's generators are.
var generatorDirs = []string{"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators",
	"/usr/local/lib/systemd/system-generators", "/etc/systemd/system-generators"}

// hiddenEnablement are the directories, relative to /etc, whose *.wants,
// *.requires and *.upholds subdirectories (the links the host's `systemctl
// enable` made) a systemd guest does not see (hideHostUnits): the host's enabled units
// (postgresql, nfs-server, apt timers, gpg-agent sockets for users) do not
// start in a guest unless the test names them.
var hiddenEnablement = []string{"systemd/system", "systemd/user"}

// unwantedLinks are links of the distribution's (static: no `systemctl
// enable` made them) that a systemd guest does not see, so the units they
// pull in start on demand only, rather than masked: dbus.service takes
// 4.7 s to start under TCG and logind needs it, but neither is of use to
// the agent (its commands open no sessions; systemctl talks to systemd's
// private socket). A user's units need both: user-runtime-dir@ asks logind
// over the bus, which dbus.socket (still listening) starts on that first
// call.
var unwantedLinks = []string{
	"/lib/systemd/system/multi-user.target.wants/dbus.service",
	"/lib/systemd/system/multi-user.target.wants/systemd-logind.service",
	"/usr/lib/systemd/system/multi-user.target.wants/dbus.service",
	"/usr/lib/systemd/system/multi-user.target.wants/systemd-logind.service",
}

// isEnablementDir reports whether name is a directory of enablement links.
func isEnablementDir(name string) bool {
	for _, s := range []string{".wants", ".requires", ".upholds"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// writeRunUnits writes the agent's unit (wanted by the boot target), the
// masks and the settings under root (the new root's /run lives at root/run);
// for a machine with a display, consoleUnit too, wanted by the boot target.
// A machine without one gets nothing more to start.
func writeRunUnits(root string, display bool) error {
	units := filepath.Join(root, unitDir)
	files := map[string]string{filepath.Join(units, agentUnit): agentUnitText}
	if display {
		files[filepath.Join(units, consoleUnit)] = consoleUnitText(loginShell())
		if err := link(filepath.Join(units, bootTarget+".wants", consoleUnit), filepath.Join(unitDir, consoleUnit)); err != nil {
			return fmt.Errorf("enable %s: %w", consoleUnit, err)
		}
	}
	for rel, text := range settings {
		files[filepath.Join(root, "run", rel)] = text
	}
	for rel, text := range coverageSettings() {
		files[filepath.Join(root, "run", rel)] = text
	}
	for path, text := range files {
		if err := writeFile(path, text); err != nil {
			return err
		}
	}
	// The boot target pulls the agent; without an ordering it starts
	// at once, with systemd's first jobs.
	if err := link(filepath.Join(units, bootTarget+".wants", agentUnit), filepath.Join(unitDir, agentUnit)); err != nil {
		return fmt.Errorf("enable %s: %w", agentUnit, err)
	}
	for _, m := range bootMasks {
		if err := mask(filepath.Join(units, m.unit)); err != nil {
			return err
		}
	}
	// default.target is multi-user.target, as on a NixOS machine without
	// a desktop: the root's (Debian's graphical.target) is never started,
	// so wait_for_unit("default.target") would fail. A unit the test
	// declares by that name replaces the link (unmask).
	if file, err := findUnit(root, "multi-user.target"); err == nil {
		if err := os.Symlink(file, filepath.Join(units, defaultTarget)); err != nil && !os.IsExist(err) {
			return fmt.Errorf("link %s: %w", defaultTarget, err)
		}
	}
	// The agent configures the network before multi-user.target starts
	// (the host's OpNetwork comes before OpServices): multi-user.target
	// reaches network.target and network-online.target, as a NixOS test's
	// wait_for_unit("network-online.target") expects, though nothing of
	// the root's pulls them in once the host's enablement is hidden.
	for _, t := range networkTargets {
		if file, err := findUnit(root, t); err == nil {
			if err := link(filepath.Join(units, "multi-user.target.wants", t), file); err != nil {
				return fmt.Errorf("link %s: %w", t, err)
			}
		}
	}
	gens := filepath.Join(root, "run/systemd/system-generators")
	for _, d := range generatorDirs {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			if err := mask(filepath.Join(gens, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeFile(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// mask makes path a link to /dev/null, which masks the unit or generator
// of that name.
func mask(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.Symlink("/dev/null", path); err != nil && !os.IsExist(err) {
		return fmt.Errorf("mask %s: %w", filepath.Base(path), err)
	}
	return nil
}
