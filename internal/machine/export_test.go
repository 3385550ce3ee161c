package machine_test

import (
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
)

func qemuPid(t *testing.T, m *machine.Machine) int {
	pid := m.QEMUPid()
	if pid == 0 {
		t.Fatal("machine has no qemu process")
	}
	return pid
}

func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
