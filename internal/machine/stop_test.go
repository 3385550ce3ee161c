package machine_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
)

// TestOnStop: a stop is told once, after QEMU exited: without an error
// when asked for (Crash), with QEMU's word when the machine went down by
// itself; a machine not up tells nothing.
func TestOnStop(t *testing.T) {
	notes := make(chan string, 16)
	cfg := machine.Config{
		OnBoot: func(n machine.BootNote) {
			if !n.Done {
				notes <- "boot"
			}
		},
		OnStop: func(n machine.StopNote) {
			if n.Err != nil {
				notes <- "down: " + n.Err.Error()
				return
			}
			notes <- "stopped"
		},
	}
	m := fakeMachineConfig(t, "serve", cfg)
	next := func(what string) string {
		t.Helper()
		select {
		case n := <-notes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no note after 10 s", what)
			return ""
		}
	}

	m.Crash() // not up yet
	if _, err := m.Succeed(t.Context(), "true"); err != nil {
		t.Fatal(err)
	}
	if got := next("first boot"); got != "boot" {
		t.Fatalf("got note %q, want boot", got)
	}
	m.Crash()
	if got := next("crash"); got != "stopped" {
		t.Errorf("after Crash got note %q, want stopped", got)
	}
	m.Crash() // not up any more

	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := next("second boot"); got != "boot" {
		t.Fatalf("got note %q, want boot", got)
	}
	syscall.Kill(m.QEMUPid(), syscall.SIGKILL)
	if got := next("kill"); !strings.HasPrefix(got, "down: qemu exited: signal: killed") {
		t.Errorf("after QEMU was killed got note %q, want \"down: qemu exited: signal: killed...\"", got)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := next("third boot"); got != "boot" {
		t.Errorf("got note %q, want boot", got)
	}
	if len(notes) > 0 {
		t.Errorf("got more notes than one per stop: %q", <-notes)
	}
}
