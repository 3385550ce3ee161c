package machine_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMOutputLimits boots a machine and proves the limits on the whole
// path (guest agent, virtio-serial, host): 300 MiB of output leave this
// process's peak RSS far below it, and a command over the frame limit fails
// alone while the machine keeps working.
func TestVMOutputLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM and prints 300 MiB (~10 s under TCG)")
	}
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "loud"}, Dir: t.TempDir()})
	ctx := t.Context()
	if _, err := m.Succeed(ctx, "true"); err != nil {
		t.Fatal(err)
	}

	t.Run("300 MiB of output", func(t *testing.T) {
		const size = 300 << 20
		before := peakRSS(t)
		r, err := m.Execute(ctx, fmt.Sprintf("head -c %d /dev/zero", size))
		grew := peakRSS(t) - before
		var oe *machine.OutputError
		if !errors.As(err, &oe) || oe.Size != size || !strings.Contains(err.Error(), r.StdoutFile) {
			t.Fatalf("got %v, want an *OutputError for %d bytes naming %s", err, size, r.StdoutFile)
		}
		if fi, err := os.Stat(r.StdoutFile); err != nil || fi.Size() != size {
			t.Errorf("output file %s: got %v, want %d bytes", r.StdoutFile, err, size)
		}
		if len(r.Stdout) != machine.OutputLimit {
			t.Errorf("got %d bytes of stdout, want the first %d", len(r.Stdout), machine.OutputLimit)
		}
		if grew > 100<<20 && !raceEnabled {
			t.Errorf("peak RSS grew by %d MiB while %d MiB passed, want under 100 MiB", grew>>20, size>>20)
		}
		t.Logf("peak RSS grew by %d MiB while %d MiB passed", grew>>20, size>>20)
	})

	t.Run("command over the frame limit", func(t *testing.T) {
		_, err := m.Succeed(ctx, "echo "+strings.Repeat("x", agentproto.MaxPayload))
		if !errors.Is(err, agentclient.ErrTooLarge) {
			t.Fatalf("got %v, want an error wrapping agentclient.ErrTooLarge", err)
		}
		if out, err := m.Succeed(ctx, "echo still here"); err != nil || out != "still here\n" {
			t.Errorf("next command: got %q, %v", out, err)
		}
	})
}
