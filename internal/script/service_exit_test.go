package script

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestServiceExitEvent: a declared service that exits during a test is a
// service-exit event of that test, with how it ended and its last lines,
// and the wait that then times out names it.
func TestServiceExitEvent(t *testing.T) {
	src := `
vm = machine(services = {"x": service("echo '(EE) Unrecognized option: -bad'; exit 1")})

def test():
    vm.wait_for_file("/never", timeout = 3)
`
	file, err := Load("svc.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	err = file.Run(t.Context(), "test", vmtest.Boot(t), t.TempDir(), ev)
	if err == nil || !strings.Contains(err.Error(), "--- services that exited ---\nservice x exited with status 1\n") {
		t.Errorf("got error %v, want the timeout naming service x", err)
	}
	var exits []report.Event
	for _, e := range ev.ev {
		if e.Kind == report.ServiceExit {
			exits = append(exits, e)
		}
	}
	if len(exits) != 1 {
		t.Fatalf("got %d service-exit events, want 1", len(exits))
	}
	e := exits[0]
	if e.Test != file.TestID("test") || e.Machine != "vm" || e.Text != "service x exited with status 1" ||
		e.Stdout != "(EE) Unrecognized option: -bad\n" {
		t.Errorf("got %+v, want test %s, machine vm, how x exited and its line", e, file.TestID("test"))
	}
}
