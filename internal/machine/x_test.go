package machine_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestXRefusals: the X methods need a display, as the other screen
// methods do, and a bad pattern is refused before anything boots.
func TestXRefusals(t *testing.T) {
	ctx := t.Context()
	plain := fakeMachine(t, "serve")
	for name, call := range map[string]func() error{
		"WaitForX":      func() error { return plain.WaitForX(ctx, time.Second) },
		"WaitForWindow": func() error { return plain.WaitForWindow(ctx, "x", time.Second) },
		"WindowNames":   func() error { _, err := plain.WindowNames(ctx); return err },
	} {
		if err := call(); !errors.Is(err, machine.ErrNoDisplay) || !strings.Contains(err.Error(), ":0") {
			t.Errorf("%s without a display: got %v, want ErrNoDisplay naming display :0", name, err)
		}
	}
	screen := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Display: true}})
	if err := screen.WaitForWindow(ctx, "a(", time.Second); err == nil || !strings.Contains(err.Error(), "missing closing )") {
		t.Errorf("WaitForWindow of a bad pattern: got %v, want the regexp's error", err)
	}
	for name, m := range map[string]*machine.Machine{"plain": plain, "screen": screen} {
		if !m.NeedsBoot() {
			t.Errorf("machine %s booted for a refused call", name)
		}
	}
}
