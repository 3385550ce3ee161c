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

// TestVMServiceExit: in a fast-mode guest a service that exits at once is
// heard as it happens (OnServiceExit), written on the console log, and
// named in a later wait's timeout with its last lines. Before, a wait_for_x
// whose Xorg had died waited its 20 s and said only that no X server was
// there.
func TestVMServiceExit(t *testing.T) {
	ctx := t.Context()
	heard := make(chan agentproto.ServiceExit, 1)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "svcexit",
		Services: []agentproto.Service{{Name: "x", Command: "echo '(EE) Unrecognized option: -bad'; exit 1"}}},
		OnServiceExit: func(e agentproto.ServiceExit) { heard <- e }})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-heard:
		if got, want := e.String(), "service x exited with status 1"; got != want {
			t.Errorf("heard %q, want %q", got, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no service exit heard in 30 s")
	}
	err := m.WaitForFile(ctx, "/never", time.Second)
	want := "--- services that exited ---\nservice x exited with status 1\n  (EE) Unrecognized option: -bad\n"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant an error containing %q", err, want)
	}
	if _, err := m.WaitForConsoleText(ctx, "^vmlab-agent: service x exited with status 1$", 10*time.Second); err != nil {
		t.Errorf("the console log does not say the service exited: %v", err)
	}
}

// TestVMSystemdFailedUnit: on a systemd machine a wait that times out
// names the declared units that failed and how (systemd's word, asked at
// the timeout), as fast mode names its exited services.
func TestVMSystemdFailedUnit(t *testing.T) {
	needsSystemd(t)
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysfail", Init: spec.InitSystemd,
		Services: []agentproto.Service{{Name: "x", Command: "echo bad option; exit 1"}, {Name: "fine", Command: "sleep 600"}}}})
	// x.service is Type=simple, so systemd calls it active for the moment
	// between its fork and its exit: a wait_for_unit may catch that moment
	// (CI once did). Wait for the failure itself.
	if _, err := m.WaitUntilSucceeds(ctx, "systemctl is-failed --quiet x.service", 60*time.Second); err != nil {
		t.Fatalf("x.service never failed: %v", err)
	}
	err := m.WaitForFile(ctx, "/never", time.Second)
	want := "--- services that exited ---\nunit x.service failed (exit-code): its main process exited with status 1\n"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant an error containing %q", err, want)
	}
	_, section, _ := strings.Cut(err.Error(), want)
	if section, _, _ = strings.Cut(section, "---"); section != "" {
		t.Errorf("the section names more than x.service: %q", section)
	}
}
