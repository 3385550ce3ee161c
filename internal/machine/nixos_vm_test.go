package machine_test

import (
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestNixOSSemantics boots one machine and checks what ported NixOS tests
// take for granted of a guest.
func TestNixOSSemantics(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "nixos"}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, cmd, want string }{
		// NixOS gives every VM virtio-rng; without it the kernel's RNG
		// took 71 s to be ready under TCG.
		{"hardware rng", "cat /sys/devices/virtual/misc/hw_random/rng_current", "virtio_rng.0\n"},
		// getrandom(2) without GRND_NONBLOCK blocks until the RNG is
		// ready: it returns at once here (the command's timeout is 10 s).
		{"rng ready", "head -c 16 /dev/random | wc -c", "16\n"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			out, err := m.Succeed(ctx, c.cmd, machine.Timeout(10e9))
			if err != nil || out != c.want {
				t.Errorf("%s: got %q, %v; want %q", c.cmd, out, err, c.want)
			}
		})
	}
}
