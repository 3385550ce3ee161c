package script

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestStartInBackground checks that start() returns at once, as NixOS's:
// `a.start(); b.start()` boots both at the same time (both boots began
// before either ended), the script goes on meanwhile, and the next command
// waits for the boot.
func TestStartInBackground(t *testing.T) {
	src := `
a = machine()
b = machine()

def test_start():
    a.start()
    b.start()
    log("both started")
    a.succeed("true")
    b.succeed("true")
`
	file, err := Load("start.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	ev := &events{}
	if err := file.Run(t.Context(), "test_start", boot, t.TempDir(), ev); err != nil {
		t.Fatalf("test_start: %v", err)
	}
	var order []string
	for _, e := range ev.ev {
		switch e.Kind {
		case report.BootStart:
			order = append(order, "boot-start "+e.Machine)
		case report.Boot:
			order = append(order, "booted "+e.Machine)
		case report.Log:
			order = append(order, "log")
		case report.Command:
			order = append(order, "command "+e.Machine)
		}
	}
	firstBooted, logAt, starts := -1, -1, 0
	for i, o := range order {
		switch {
		case o == "log" && logAt < 0:
			logAt = i
		case strings.HasPrefix(o, "booted") && firstBooted < 0:
			firstBooted = i
		case strings.HasPrefix(o, "boot-start") && firstBooted < 0:
			starts++
		}
	}
	if starts != 2 || logAt < 0 || firstBooted < 0 || logAt > firstBooted {
		t.Errorf("got events %q, want both boots started and the log before the first boot ended", order)
	}
}

// TestStartInBackgroundFails checks that a boot start() left running that
// fails is reported by the machine's next call, at that call's line.
func TestStartInBackgroundFails(t *testing.T) {
	src := `
a = machine(sysctls = {"fs.file-nr": "1"})

def test_bad():
    a.start()
    log("went on")
    a.succeed("true")
`
	file, err := Load("bad.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	ev := &events{}
	err = file.Run(t.Context(), "test_bad", boot, t.TempDir(), ev)
	if err == nil || !strings.Contains(err.Error(), "set up the machine: sysctl fs.file-nr") {
		t.Fatalf("got %v, want the boot's error", err)
	}
	if logs := ev.find(report.Log); len(logs) == 0 || logs[0].Text != "went on" {
		t.Errorf("got logs %+v, want the script to go on after start()", logs)
	}
	if ends := ev.find(report.TestEnd); len(ends) != 1 || !strings.Contains(ends[0].Where, "bad.star:7") {
		t.Errorf("got end %+v, want the failure at the next call, bad.star:7", ends)
	}
}

// TestStartFailsUnobserved: a boot start() left that fails fails the test
// at its end when no later call used the machine; the test passed.
func TestStartFailsUnobserved(t *testing.T) {
	src := `
a = machine(sysctls = {"fs.file-nr": "1"})

def test_bad():
    a.start()
`
	file, err := Load("bad.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = file.Run(t.Context(), "test_bad", vmtest.Boot(t), t.TempDir(), &events{})
	if err == nil || !strings.Contains(err.Error(), "a.start(): the boot failed, and no later call used the machine") ||
		!strings.Contains(err.Error(), "sysctl fs.file-nr") {
		t.Fatalf("got %v, want the test failed by the boot's error", err)
	}
}

// TestStartThenCrash: a call after start() acts on the booted machine, not
// on one QEMU has not started yet: a.start(); a.crash() crashes a machine
// that booted (before, crash() ran first and the boot went on after it).
func TestStartThenCrash(t *testing.T) {
	src := `
a = machine()

def test_crash():
    a.start()
    a.crash()
`
	file, err := Load("crash.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	ev := &events{}
	if err := file.Run(t.Context(), "test_crash", boot, t.TempDir(), ev); err != nil {
		t.Fatalf("test_crash: %v", err)
	}
	booted, crashed := -1, -1
	for i, e := range ev.ev {
		switch {
		case e.Kind == report.Boot && booted < 0:
			booted = i
		case e.Kind == report.Command && strings.HasPrefix(e.Command, "crash("):
			crashed = i
		}
	}
	if booted < 0 || crashed < 0 || crashed < booted {
		t.Errorf("got the boot at event %d and crash() at %d, want the crash after the boot", booted, crashed)
	}
}

// TestUnobservedStartsOwnTest: a test is charged only with the boots it
// started (not one a REPL's prompt or an earlier test left), and the wait
// for a boot still running ends with the context (a REPL's Ctrl-C).
func TestUnobservedStartsOwnTest(t *testing.T) {
	failed := &pendingStart{done: make(chan struct{}), err: errors.New("no boot"), test: "prompt"}
	close(failed.done)
	running := &pendingStart{done: make(chan struct{}), test: "f.test_b"}
	r := &run{}
	r.starts.pending = map[string]*pendingStart{"a": failed, "b": running}
	if err := r.unobservedStarts(t.Context(), "f.test_a"); err != nil {
		t.Errorf("test_a, which started nothing: got %v, want nil", err)
	}
	if err := r.unobservedStarts(t.Context(), "prompt"); err == nil || !strings.Contains(err.Error(), "a.start(): the boot failed") {
		t.Errorf("the prompt's failed start: got %v, want it reported", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.unobservedStarts(ctx, "f.test_b"); !errors.Is(err, context.Canceled) {
		t.Errorf("a boot still running, context canceled: got %v, want context.Canceled", err)
	}
}
