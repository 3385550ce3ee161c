package qemu_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestFreePageReportingVM: every machine has the balloon that reports
// free pages, and its guest loads virtio_balloon at boot, so 200 MiB a
// guest writes to a tmpfs and then frees leave QEMU's RSS within a few
// seconds. (Before machines had it, the same 200 MiB stayed: 326 MiB,
// 539 at the peak, 539 after the free.) The machine boots cold whatever
// VMLAB_SNAPSHOT says: one restored from a snapshot has no balloon
// (docs/snapshots.md).
func TestFreePageReportingVM(t *testing.T) {
	shared := vmtest.Boot(t)
	boot, err := machine.PrepareBoot(machine.BootOptions{Agent: vmtest.Agent(t), Accel: shared.Accel.Name, Snapshot: "off"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "fpr", MemoryMiB: 512}, Boot: boot})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := t.Context()
	if _, err := m.Succeed(ctx, "grep -q '^virtio_balloon ' /proc/modules"); err != nil {
		t.Fatalf("virtio_balloon is not loaded in the guest: %v", err)
	}
	before := rssMiB(t, m.QEMUPid())
	if _, err := m.Succeed(ctx, "mkdir -p /tmp/fpr && mount -t tmpfs -o size=300m tmpfs /tmp/fpr && head -c 200M /dev/zero > /tmp/fpr/big"); err != nil {
		t.Fatal(err)
	}
	peak := rssMiB(t, m.QEMUPid())
	if peak < before+150 {
		t.Fatalf("RSS %d MiB before, %d MiB with 200 MiB in a tmpfs: want it grown by about 200", before, peak)
	}
	if _, err := m.Succeed(ctx, "rm /tmp/fpr/big && umount /tmp/fpr"); err != nil {
		t.Fatal(err)
	}
	// The guest reports free blocks 2 s after they gather, in rounds:
	// the drop takes a few seconds under TCG. RSS is read until it
	// drops or the deadline passes.
	deadline := time.Now().Add(30 * time.Second)
	after := rssMiB(t, m.QEMUPid())
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for after > peak-100 && time.Now().Before(deadline) {
		<-tick.C
		after = rssMiB(t, m.QEMUPid())
	}
	t.Logf("QEMU RSS: %d MiB before, %d MiB with 200 MiB written, %d MiB after the free", before, peak, after)
	if after > peak-100 {
		t.Errorf("RSS %d MiB after the free, %d at the peak: want at least 100 MiB back within 30 s", after, peak)
	}
}

// rssMiB reads VmRSS of process pid, in MiB.
func rssMiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the memory of QEMU: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("read VmRSS %q: %v", v, err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
