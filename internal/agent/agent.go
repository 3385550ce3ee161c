// Package agent is the guest side of vmlab: the same binary as the host
// driver, run as the guest's PID 1.
//
// As PID 1 (init.go) it loads kernel modules, assembles the root file system
// from the host's shares and switches into it; then (server.go) it opens the
// virtio-serial port and answers the host's requests: commands, waits, file
// copies, power off. Being PID 1 it also reaps orphans (reaper.go), taking
// care not to reap its own commands. One process instead of an init that
// starts a separate server saves a second Go start-up: ~50 ms of a TCG boot.
//
// In a guest whose init is systemd (systemd.go), PID 1 hands over to the
// root's systemd once the root is built, and systemd runs the agent again
// as a unit (unitMode), which serves the host.
//
// Call Main from the program's main when IsGuest reports true.
package agent

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// IsGuest reports whether this process is the agent: the guest's init, or
// the unit systemd started in its place (its parent is PID 1).
func IsGuest() bool { return os.Getpid() == 1 || unitMode() && os.Getppid() == 1 }

// Main runs the agent and never returns.
func Main() {
	if os.Getpid() != 1 {
		unitMain()
	} else {
		initMain()
	}
	os.Exit(1)
}

// logf writes to the console. Serial output is slow under emulation (every
// byte traps to QEMU), so the agent says little: failures, and nothing else.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmlab-agent: "+format+"\n", args...)
}

// fatal reports err on the console and powers off, so the host sees QEMU exit
// at once with the reason on the console instead of waiting for a timeout.
// The agent run by systemd exits instead, and systemd powers off
// (FailureAction=poweroff-force in its unit, systemd_units.go).
func fatal(err error) {
	logf("fatal: %v", err)
	if os.Getpid() != 1 {
		os.Exit(1)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	os.Exit(1)
}

// uptime is the time since the guest kernel started.
func uptime() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}
