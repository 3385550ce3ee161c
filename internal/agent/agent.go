// Package agent is the guest side of vmlab: the same binary as the host
// driver, run as the guest's PID 1.
//
// It runs as two processes. PID 1 (init.go) loads kernel modules, assembles
// the root file system from the host's shares, switches into it, starts the
// server and then only reaps orphans. The server (server.go) opens the
// virtio-serial port and answers the host's requests: commands, waits, file
// copies, power off. Splitting them keeps PID 1's reaping (wait on any child)
// away from the server's own children, whose exit statuses it needs.
//
// Call Main from the program's main when IsGuest reports true.
package agent

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// roleEnv marks the server process that PID 1 starts.
const roleEnv = "VMLAB_AGENT_ROLE"

// IsGuest reports whether this process is the agent: the guest's init or the
// server init started.
func IsGuest() bool {
	return os.Getpid() == 1 || os.Getenv(roleEnv) == "server"
}

// Main runs the agent's role and never returns.
func Main() {
	if os.Getpid() == 1 {
		initMain()
	}
	serverMain()
}

// logf writes to the console. Serial output is slow under emulation (every
// byte traps to QEMU), so the agent says little: failures, and nothing else.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmlab-agent: "+format+"\n", args...)
}

// fatal reports err on the console and powers off, so the host sees QEMU exit
// at once with the reason on the console instead of waiting for a timeout.
func fatal(err error) {
	logf("fatal: %v", err)
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
