package script

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
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
    # The exit first (under load it may come after 3 s of the wait);
    # wait_for_console_text does not start the machine, as in NixOS.
    vm.start()
    vm.wait_for_console_text("vmlab-agent: service x exited with status 1", timeout = 120)
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

// TestServiceExitNotDroppedAsConsole: a service-exit event that comes when
// the console's queue is full (a chatty crash-looping service, a stuck
// terminal) still reaches the reports, and the drop notice counts only
// the console lines dropped.
func TestServiceExitNotDroppedAsConsole(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	_, r, err := runNoLab(t.Context(), f, "test_log")
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	blocked, release := make(chan struct{}), make(chan struct{})
	first := true
	q := report.NewQueue(func(e report.Event) {
		if first { // the queue's goroutine alone calls emit
			first = false
			close(blocked)
			<-release
		}
		ev.Emit(e)
	}, 2)
	console := consoleEvents(q, r, "a")
	console(machine.Line{Text: "line 0"}) // taken by the writer, which then sticks
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the queue's writer took no event in 10 s")
	}
	for i := 1; i <= 5; i++ { // lines 1 and 2 fill the queue; 3 to 5 are dropped
		console(machine.Line{Text: fmt.Sprintf("line %d", i)})
	}
	serviceEvents(q, r, "a")(agentproto.ServiceExit{Name: "x", Exit: 1, Exits: 5})
	close(release)
	q.Close()

	if got := ev.find(report.ServiceExit); len(got) != 1 || got[0].Text != "service x exited with status 1 (exit 5 since boot)" {
		t.Errorf("got service-exit events %+v, want the one of x", got)
	}
	var notices []string
	for _, e := range ev.find(report.Log) {
		notices = append(notices, e.Text)
	}
	if len(notices) != 1 || !strings.HasPrefix(notices[0], "3 console lines dropped:") {
		t.Errorf("got log events %q, want one saying 3 console lines were dropped", notices)
	}
}
