package machine_test

import (
	"testing"
	"time"

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
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "nixos", Setup: machine.Setup{
		Groups: []string{"alice"}, Users: []machine.Account{{Name: "alice"}}}}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name, cmd  string
		wantStatus int
		wantOut    string
	}{
		// NixOS gives every VM virtio-rng; without it the kernel's RNG
		// took 71 s to be ready under TCG.
		{"hardware rng", "cat /sys/devices/virtual/misc/hw_random/rng_current", 0, "virtio_rng.0\n"},
		// getrandom(2) without GRND_NONBLOCK blocks until the RNG is
		// ready: it returns at once here (the command's timeout is 10 s).
		{"rng ready", "head -c 16 /dev/random | wc -c", 0, "16\n"},
		// Commands run under bash -euo pipefail, as the NixOS driver's.
		{"pipefail", "false | true", 1, ""},
		{"errexit", "false; echo went on", 1, ""},
		{"nounset", "echo $UNSET; echo went on", 1, ""},
		// useradd -U refused the declared group alice: the boot failed.
		{"user named as a group", "id -gn alice", 0, "alice\n"},
		{"escape hatch", "set +euo pipefail; false | true; echo $UNSET went on", 0, "went on\n"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			res, err := m.Execute(ctx, c.cmd, machine.Timeout(10*time.Second))
			if err != nil || res.Status != c.wantStatus || res.Stdout != c.wantOut {
				t.Errorf("%s: got status %d, %q, %v; want %d, %q", c.cmd, res.Status, res.Stdout, err, c.wantStatus, c.wantOut)
			}
		})
	}
	// A relative path means the same to a wait as to a command: it hung
	// for 15 minutes in a port, looking in another directory.
	t.Run("relative wait_for_file", func(t *testing.T) {
		if _, err := m.Succeed(ctx, "touch relative-marker"); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitForFile(ctx, "relative-marker", 5*time.Second); err != nil {
			t.Errorf("got %v, want the file touched by a command found", err)
		}
	})
}
