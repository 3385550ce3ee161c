package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// serviceGrace is how long declared services get to exit after SIGTERM
// before SIGKILL; stopGrace is the same for every other process after
// them. Both fit in the host's 30 s wait for the power-off.
const (
	serviceGrace = 5 * time.Second
	stopGrace    = 2 * time.Second
)

// powerOff shuts the guest down as NixOS does: it stops the declared
// services (SIGTERM, SIGKILL after serviceGrace), then every other process
// but PID 1 and this one, syncs, unmounts the file systems (remounting
// read-only those that stay busy) and powers off or reboots. QEMU runs with
// -no-reboot, so either way its process exits and the host sees the machine
// go down.
//
// In a systemd guest, systemd does it (systemPowerOff).
func powerOff(sv *services, reboot bool) {
	if unitMode() {
		systemPowerOff(reboot)
		return
	}
	sv.stop(serviceGrace)
	writeCoverageNotes(sv.killed())
	unix.Kill(-1, unix.SIGTERM)
	awaitOthers(stopGrace)
	unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	unmountAll()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		logf("power off: %v", err)
	}
}

// awaitOthers returns when no process but PID 1 and this one is left, or
// after grace. It looks again at every SIGCHLD the reaper handles.
func awaitOthers(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		next := nextExit() // before looking, so no exit falls between
		if !othersRunning() {
			return
		}
		select {
		case <-next:
		case <-t.C:
			return
		}
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

// unmountAll unmounts every file system but the root, the innermost first,
// and remounts read-only those it cannot unmount, then the root, so that
// disks are left clean (an ext4 on an extra disk, or the machine's own
// disk, needs no journal recovery at next boot).
func unmountAll() {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		logf("power off: read mounts: %v", err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range slices.Backward(lines) {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] == "/" {
			continue
		}
		mp := unescapeMount(f[1])
		if unix.Unmount(mp, 0) != nil {
			unix.Mount("", mp, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	// The root is the machine's disk (a bind of its root/ directory):
	// remounting it read-only makes its file system read-only, clean.
	unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	unix.Sync()
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
