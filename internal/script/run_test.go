package script

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestMain: the package's tests load files with OCR calls whether or not
// the host has tesseract; Load's check of it has its own test
// (TestOCRWithoutTesseract).
func TestMain(m *testing.M) {
	ocrInstalled = func() error { return nil }
	vmtest.Main(m)
}

// events collects what a run reports.
type events struct {
	mu sync.Mutex
	ev []report.Event
}

func (e *events) Emit(ev report.Event) {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
}

func (e *events) find(kind report.Kind) []report.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []report.Event
	for _, ev := range e.ev {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func TestRun(t *testing.T) {
	src := `
a = machine()
b = machine(vlans = [1, 2])

def test_pass():
    start_all()
    out = a.succeed("echo hi", "echo there")
    if out != "hi\nthere\n":
        fail("got %r" % out)
    status, out = a.execute("echo err >&2; exit 3")
    if status != 3:
        fail("status %d" % status)
    subtest("reach b", lambda: a.succeed("ping -c 1 -W 2 b"))
    log("done")
    b.wait_for_open_port(22, timeout = 1) if False else None

def test_fail():
    subtest("outer", lambda: subtest("inner", lambda: b.succeed("echo output; exit 4")))

seen = []

def test_shares_nothing():
    seen.append(1)

def test_machines():
    names = [m.name for m in machines]
    if names != ["a", "b"] or len(machines) != 2 or machines[-1].name != "b":
        fail("machines holds %s" % names)

def marker_present():
    a.succeed("test -e /tmp/marker")

def test_wait_times_out():
    a.wait_for_file("/tmp")
    a.copy_from_vm("/etc/hostname")
    a.wait_for_file("/nonexistent", timeout = 1)

def test_polling():
    a.succeed("touch /tmp/marker")
    polling_condition(marker_present, lambda: [a.succeed("true"), a.succeed("rm /tmp/marker"), a.succeed("true")])
`
	file, err := Load("run.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	ev := &events{}
	if err := file.Run(t.Context(), "test_pass", boot, t.TempDir(), ev); err != nil {
		t.Fatalf("test_pass: %v", err)
	}
	if logs := ev.find(report.Log); len(logs) == 0 || logs[len(logs)-1].Text != "done" {
		t.Errorf("got logs %+v, want the script's log", logs)
	}
	cmds := ev.find(report.Command)
	if len(cmds) < 3 || cmds[2].Exit != 3 || cmds[2].Stderr != "err\n" {
		t.Errorf("got commands %+v", cmds)
	}
	if boots := ev.find(report.Boot); len(boots) != 2 {
		t.Errorf("got %d boot events, want 2", len(boots))
	}
	checkStarts(t, ev)

	ev = &events{}
	if err := file.Run(t.Context(), "test_wait_times_out", boot, t.TempDir(), ev); err == nil {
		t.Error("test_wait_times_out passed")
	}
	waits := ev.find(report.Command)
	if len(waits) != 3 || waits[0].Outcome != report.Done || waits[2].Outcome != report.TimedOut || waits[2].Timeout != time.Second {
		t.Errorf("got waits %+v, want one done, a copy and one timed out after 1s", waits)
	}
	if len(waits) == 3 && (waits[1].File == "" || !fileExists(waits[1].File)) {
		t.Errorf("copy_from_vm's event names file %q, want the copy on the host", waits[1].File)
	}
	checkStarts(t, ev)

	ev = &events{}
	err = file.Run(t.Context(), "test_fail", boot, t.TempDir(), ev)
	if err == nil {
		t.Fatal("test_fail passed")
	}
	ends := ev.find(report.TestEnd)
	if len(ends) != 1 || ends[0].Passed || !strings.Contains(ends[0].Error, "exit status 4") ||
		!strings.Contains(ends[0].Where, "run.star:18") {
		t.Errorf("got end %+v, want the failure with its script line", ends)
	}
	if err := file.Run(t.Context(), "test_machines", boot, t.TempDir(), &events{}); err != nil {
		t.Errorf("test_machines: %v", err)
	}
	if err := file.Run(t.Context(), "test_shares_nothing", boot, t.TempDir(), &events{}); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Errorf("test_shares_nothing: got %v, want an error: the file's globals are read-only in tests", err)
	}
	ev2 := &events{}
	err = file.Run(t.Context(), "test_polling", boot, t.TempDir(), ev2)
	if err == nil || !strings.Contains(err.Error(), "polling condition marker_present failed") {
		t.Errorf("test_polling: got %v, want the polling condition to fail once the marker is gone", err)
	}
	subs := ev.find(report.SubtestEnd)
	if len(subs) != 2 || strings.Join(subs[0].Path, "/") != "outer/inner" || subs[0].Passed {
		t.Errorf("got subtest ends %+v, want inner then outer, failed", subs)
	}
}

// checkStarts fails the test unless every Command event follows its
// CommandStart, so the terminal can show the step while it runs.
func checkStarts(t *testing.T, ev *events) {
	t.Helper()
	var open *report.Event
	for _, e := range ev.ev {
		switch e.Kind {
		case report.CommandStart:
			if open != nil {
				t.Errorf("%s started while %s ran", e.Command, open.Command)
			}
			open = &e
		case report.Command:
			if open == nil || open.Command != e.Command || open.Machine != e.Machine {
				t.Errorf("command %s ended without its start (open: %+v)", e.Command, open)
			}
			open = nil
		}
	}
}
