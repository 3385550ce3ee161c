package machine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestCleanShutdown checks that Shutdown is NixOS's clean one: a service
// gets SIGTERM and time to act on it, a service that ignores SIGTERM does
// not hold the shutdown past its grace period, and a file system on an
// extra disk (which keeps its contents across boots) is unmounted, so the
// next boot finds no journal to recover. Before, the machine was powered
// off with the disk mounted (needs_recovery set).
func TestCleanShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM twice")
	}
	ctx := t.Context()
	// The mounter records the disk's features before mounting it, then
	// writes its state on it when told to stop.
	mounter := "blkid /dev/vda >/dev/null || mkfs.ext4 -q /dev/vda; " +
		"dumpe2fs -h /dev/vda 2>/dev/null | grep '^Filesystem features' > /tmp/features; " +
		"mkdir -p /mnt/d && mount /dev/vda /mnt/d && " +
		"trap 'echo stopped > /mnt/d/state; exit 0' TERM && echo up && while :; do sleep 0.1; done"
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "clean", Disks: []int{32},
		Services: []agentproto.Service{
			{Name: "mounter", Command: mounter, ReadyLog: "^up$"},
			{Name: "stubborn", Command: "trap '' TERM; echo up; while :; do sleep 0.1; done", ReadyLog: "^up$"},
		}}})
	if err := m.WaitForUnit(ctx, "default.target", "", 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// 5 s of grace for the services, 2 s for the rest, and slack for TCG.
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("shutdown took %v, want the stubborn service killed after its 5 s grace", took)
	}
	if err := m.WaitForUnit(ctx, "default.target", "", 0); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Succeed(ctx, "cat /mnt/d/state"); err != nil || out != "stopped\n" {
		t.Errorf("the mounter's SIGTERM trap: got %q, %v; want %q on the disk", out, err, "stopped\n")
	}
	out, err := m.Succeed(ctx, "cat /tmp/features")
	if err != nil || !strings.Contains(out, "has_journal") || strings.Contains(out, "needs_recovery") {
		t.Errorf("the disk at the next boot: got %q, %v; want a journal that needs no recovery (unmounted)", out, err)
	}
}
