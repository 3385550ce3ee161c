package lab_test

import (
	"os"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/spec"
)

// TestSystemdNetwork boots a systemd machine and a fast one on the same
// VLAN: each reaches the other by name. The systemd guest's agent, a unit
// once systemd is PID 1, still configures its NIC (with the network
// driver the initramfs held, which the root switch hides from it).
func TestSystemdNetwork(t *testing.T) {
	if _, err := os.Stat(spec.SystemdPath); err != nil {
		t.Skipf("the host's root has no %s to boot", spec.SystemdPath)
	}
	l, _ := newLab(t, spec.Machine{Name: "unit", Init: spec.InitSystemd}, spec.Machine{Name: "fast"})
	ctx := t.Context()
	for _, name := range []string{"unit", "fast"} {
		if err := l.Machine(name).Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ from, to string }{{"unit", "fast"}, {"fast", "unit"}} {
		if out, err := l.Machine(tt.from).Succeed(ctx, "ping -c 1 -W 5 "+tt.to); err != nil {
			t.Errorf("%s -> %s: %v: %s", tt.from, tt.to, err, out)
		}
	}
	if out, err := l.Machine("unit").Succeed(ctx, "cat /proc/1/comm"); err != nil || out != "systemd\n" {
		t.Errorf("unit's PID 1: got %q, %v; want systemd", out, err)
	}
	// The targets NixOS tests wait for are reached, as on a NixOS machine
	// without a desktop: default.target is multi-user.target (not the
	// root's graphical.target, which nothing starts), and the network's
	// targets follow the agent's configuration.
	for _, unit := range []string{"default.target", "network.target", "network-online.target"} {
		if err := l.Machine("unit").WaitForUnit(ctx, unit, "", time.Minute); err != nil {
			t.Errorf("wait for %s: %v", unit, err)
		}
	}
}
