package machine_test

import (
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSystemdNamedUnitNeeds enables a unit vmlab masks whose own need is
// masked too: sys-kernel-config.mount requires modprobe@configfs.service.
// Naming the mount unmasks both, so configfs is loaded and mounted. Before,
// modprobe@ stayed masked and the mount was skipped (its
// ConditionPathExists=/sys/kernel/config was not met).
func TestSystemdNamedUnitNeeds(t *testing.T) {
	needsSystemd(t)
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysd", Init: spec.InitSystemd,
		Enable: []string{"sys-kernel-config.mount"}}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitMultiUser(t, ctx, m)
	out, err := m.Execute(ctx, "systemctl is-active sys-kernel-config.mount; systemctl show -P LoadState modprobe@configfs.service; findmnt -n -o FSTYPE /sys/kernel/config")
	if want := "active\nloaded\nconfigfs\n"; err != nil || out.Stdout != want {
		t.Errorf("got %q, %v; want %q", out.Stdout, err, want)
	}
}
