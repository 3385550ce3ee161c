package machine_test

import (
	"strings"
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

// TestSystemdUdevByName: enabling systemd-udev-trigger.service, as
// docs/systemd.md advises a test that needs device units, unmasks udevd
// and its two sockets with it, and device units appear.
func TestSystemdUdevByName(t *testing.T) {
	needsSystemd(t)
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysd", Init: spec.InitSystemd,
		Enable: []string{"systemd-udev-trigger.service"}}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitMultiUser(t, ctx, m)
	out, err := m.Execute(ctx, "systemctl is-active systemd-udev-trigger.service systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket")
	if want := "active\nactive\nactive\nactive\n"; err != nil || out.Stdout != want {
		t.Errorf("got %q, %v; want %q", out.Stdout, err, want)
	}
	devices, err := m.Succeed(ctx, "udevadm settle --timeout=120 && systemctl list-units --type=device --no-legend --plain")
	if err != nil || !strings.Contains(devices, ".device") {
		t.Errorf("device units: got %q, %v; want some", devices, err)
	}
}
