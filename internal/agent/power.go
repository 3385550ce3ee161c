package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// stopGrace is how long processes get to exit after SIGTERM before SIGKILL.
const stopGrace = 2 * time.Second

// powerOff stops every process but PID 1 and this one, syncs the file
// systems and powers off or reboots. QEMU runs with -no-reboot, so either way
// its process exits and the host sees the machine go down.
func powerOff(reboot bool) {
	unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(stopGrace)
	for othersRunning() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		logf("power off: %v", err)
	}
}

// othersRunning reports whether any user process other than PID 1 and this
// one is alive (kernel threads have no command line and do not count).
func othersRunning() bool {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pid == 1 || pid == self {
			continue
		}
		if b, err := os.ReadFile(d + "/cmdline"); err == nil && len(b) > 0 {
			return true
		}
	}
	return false
}
