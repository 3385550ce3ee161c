package machine_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
)

// TestFakeServiceExit: a fast-mode service that exits is told to
// OnServiceExit as it happens, and a wait that then times out says which
// service exited and how, with its last words, instead of only "timed
// out" (the wait_for_x of a dead Xorg waited 20 s and said nothing of it).
func TestFakeServiceExit(t *testing.T) {
	heard := make(chan agentproto.ServiceExit, 4)
	cfg := machine.Config{OnServiceExit: func(e agentproto.ServiceExit) { heard <- e }}
	cfg.Services = []agentproto.Service{
		{Name: "x", Command: "printf '(EE) \\nFatal server error:\\n(EE) Unrecognized option: -bad\\n(EE) \\n\\n' >&2; exit 1"},
		{Name: "fine", Command: "sleep 30"},
	}
	m := fakeMachineConfig(t, "serve", cfg)
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "never")
	select {
	case e := <-heard:
		if got, want := e.String(), "service x exited with status 1"; got != want {
			t.Errorf("OnServiceExit heard %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnServiceExit heard nothing in 10 s")
	}
	err := m.WaitForFile(t.Context(), missing, 100*time.Millisecond)
	var te *machine.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a TimeoutError", err)
	}
	want := "--- services that exited ---\nservice x exited with status 1\n  Fatal server error:\n  (EE) Unrecognized option: -bad"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("the timeout error lacks the exited service:\ngot:\n%v\nwant it to contain:\n%s", err, want)
	}
	if strings.Contains(err.Error(), "  (EE)\n") || strings.Contains(err.Error(), "service fine") {
		t.Errorf("the timeout error shows a bare marker line or names a service that runs:\n%v", err)
	}
}
