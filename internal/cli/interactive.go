package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// interactive is vmlab run's -i flag: "" (off), "fail" (-i: the REPL
// after a failing test) or "always" (-i=always: after every test).
type interactive struct {
	e    *env
	mode string

	// stopRun, set by vmlab run, stops the run after exit() at the REPL:
	// the tests left are reported skipped.
	stopRun context.CancelCauseFunc
	// hold is the run's report files, which take a test's end once its
	// machines have stopped.
	hold *endHold
}

func (in *interactive) String() string {
	if in == nil {
		return ""
	}
	return in.mode
}

// IsBoolFlag lets -i stand alone, as -i=true.
func (in *interactive) IsBoolFlag() bool { return true }

func (in *interactive) Set(v string) error {
	switch v {
	case "true", "fail":
		in.mode = "fail"
	case "always":
		in.mode = "always"
	case "false":
		in.mode = ""
	default:
		return fmt.Errorf("want -i (after a failing test) or -i=always (after every test), got -i=%s", v)
	}
	return nil
}

func (in *interactive) on() bool { return in != nil && in.mode != "" }

// check refuses -i without a terminal on stdin, before anything boots
// (there would be no one to type), and with -json (its events are on
// stdout, where the REPL talks).
func (in *interactive) check(jsonEvents bool) error {
	if !in.on() {
		return nil
	}
	if jsonEvents {
		return errors.New("-i and -json both want stdout: the REPL for people, the events for a program; drop one")
	}
	if f, ok := in.e.stdin.(*os.File); !ok || f != os.Stdin || !pty.IsTerminal(f) {
		return errors.New("-i opens a REPL, which wants a terminal on stdin: run vmlab run -i from a terminal, or vmlab repl FILE with statements on stdin")
	}
	return nil
}

// run runs the job on a session that outlives the test: when the test
// failed (or with -i=always), the REPL runs on its machines, still up, and
// its events go to the terminal only. The first Ctrl-C during the test
// ends the test, not the run, and the REPL opens on it. Leaving the REPL
// stops the machines; the test's result stands. The reports hold the
// test as without -i: its events, its machines stopping, then its end
// (which the terminal shows at once, the report files once the machines
// have stopped). exit() at the REPL stops the run (stopRun).
func (in *interactive) run(ctx, tctx context.Context, j job, boot *machine.Boot, outDir string, rep *report.Reporter) error {
	id := j.file.TestID(j.test)
	sw := newSwitchEmitter(rep, j.file.TestID("repl"), id)
	// The session outlives the test, but it is the test's lab to other
	// terminals, before and after the REPL takes over: FILE.TEST.
	serveLabs(j.file, "run", func(string) string { return control.CleanName(id) }, nil, in.e.errorf)
	sctx, endSession := context.WithCancelCause(ctx)
	defer endSession(nil)
	s, err := j.file.Open(sctx, boot, outDir, sw)
	if err != nil {
		rep.Emit(report.Event{Kind: report.TestStart, Test: id})
		rep.Emit(report.Event{Kind: report.TestEnd, Test: id, Error: err.Error()})
		return err
	}
	in.hold.hold(id)
	defer in.hold.release(id) // after Close: the machines have stopped
	defer s.Close()
	s.SetLeaving("Ctrl-D stops the machines and the run goes on with the next test; exit() (or quit()) stops them and the run, the tests left reported as skipped")
	err = in.runTest(tctx, s, j)
	sw.stopping(upMachines(s, j.file))
	if err == nil && in.mode != "always" || ctx.Err() != nil {
		return err
	}
	events := newReplEvents(in.e.stdout, false)
	events.noSummary = true // the run's summary is the one
	sw.set(events)
	defer sw.set(rep) // Close's events are the run's
	in.announce(s, j, err)
	r := newREPL(in.e, s, events)
	r.run(ctx)
	events.left()
	if r.exited.Load() && in.stopRun != nil {
		in.stopRun(errExitREPL)
	}
	endSession(errLeft) // a boot start() began at the REPL stops, not to be waited for
	events.Close()
	return err
}

// errExitREPL stops a run -i whose REPL called exit(): the tests left
// are reported "not started: " with it.
var errExitREPL = errors.New("exit() at the REPL stopped the run")

// runTest runs the job's test on s. The first Ctrl-C meanwhile ends the
// test (it fails, "interrupted by Ctrl-C") and not the run, so that the
// REPL opens on a test that hangs; the next one stops the run.
func (in *interactive) runTest(tctx context.Context, s *script.Session, j job) error {
	tctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)
	release := in.e.intr.setOnce(func() {
		fmt.Fprintf(in.e.stderr, "\nvmlab: Ctrl-C: %s stops here and the REPL opens on its machines; Ctrl-C again stops the run\n", j.file.TestID(j.test))
		cancel(errCtrlC)
	})
	defer release()
	return s.RunTest(tctx, j.test)
}

// upMachines are the names of the file's machines that are up (or
// booting) on s.
func upMachines(s *script.Session, f *script.File) map[string]bool {
	up := make(map[string]bool)
	for _, spec := range f.Specs {
		if s.Lab().Machine(spec.Name).QEMUPid() != 0 {
			up[spec.Name] = true
		}
	}
	return up
}

// announce says where the REPL stands: after which test, on which
// machines in what state.
func (in *interactive) announce(s *script.Session, j job, err error) {
	what := "passed"
	if err != nil {
		msg, _ := script.ErrorText(err)
		head, _ := headLine(msg)
		what = "failed: " + head
	}
	var states []string
	for _, spec := range j.file.Specs {
		m := s.Lab().Machine(spec.Name)
		state := "down"
		switch {
		case m.QEMUPid() != 0:
			state = "up"
		case m.NeedsBoot():
			state = "not started"
		}
		states = append(states, spec.Name+" ("+state+")")
	}
	on := "on its machines as the test left them: " + strings.Join(states, ", ")
	if len(states) == 0 {
		on = "(the file has no machines)"
	}
	fmt.Fprintf(in.e.stderr, "vmlab: %s %s\nvmlab: REPL %s; help() says what is bound; Ctrl-D stops them and the run goes on, exit() stops the run; from another terminal: vmlab shell -lab %s MACHINE\n",
		j.file.TestID(j.test), what, on, control.CleanName(j.file.TestID(j.test)))
}

// switchEmitter passes events on to one emitter, which can change: a
// session's events go to the run's reports, then to the REPL. Those of
// the session outside its tests (its label's, script.File.Open's) never
// go to the run's: they hold the tests as they ran, not what the REPL did
// (a boot it began, cut short). But for the stopping of the machines the
// test left up (stopping): their Stop events and last console lines are
// the test's, as they are without -i.
type switchEmitter struct {
	run   script.Emitter
	label string
	test  string // the test whose machines stop at the session's end

	mu    sync.Mutex
	to    script.Emitter
	stops map[string]bool // the machines whose stopping is the test's
}

func newSwitchEmitter(run script.Emitter, label, test string) *switchEmitter {
	return &switchEmitter{run: run, label: label, test: test, to: run}
}

func (sw *switchEmitter) set(to script.Emitter) {
	sw.mu.Lock()
	sw.to = to
	sw.mu.Unlock()
}

// stopping says the machines whose stopping is the test's: those it left
// up.
func (sw *switchEmitter) stopping(machines map[string]bool) {
	sw.mu.Lock()
	sw.stops = machines
	sw.mu.Unlock()
}

func (sw *switchEmitter) Emit(e report.Event) {
	sw.mu.Lock()
	to, theTests := sw.to, sw.stops[e.Machine]
	sw.mu.Unlock()
	if to == sw.run && e.Test == sw.label {
		if !theTests || e.Kind != report.Stop && e.Kind != report.Console {
			return
		}
		e.Test = sw.test
	}
	to.Emit(e)
}

// endHold passes events on to the report files (events.jsonl, junit.xml,
// report.html) but holds back the end of a test whose session outlives
// it under -i: the console logs and captures it reports, and its
// TestEnd, go on after the machines have stopped (release), so that the
// files hold the test's events in the order they have without -i (its
// steps, its machines stopping with their last console lines, its files,
// its end). The terminal is not behind it: it shows the end at once,
// before the REPL.
type endHold struct {
	to []report.Sink

	mu   sync.Mutex
	test string         // the test held; "" when none
	held []report.Event // its files and its end, in order
}

func newEndHold(to ...report.Sink) *endHold { return &endHold{to: to} }

// hold starts holding test's end.
func (h *endHold) hold(test string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.test, h.held = test, nil
	h.mu.Unlock()
}

// release passes on what was held of test, its end last, and holds
// nothing more.
func (h *endHold) release(test string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.test != test {
		return
	}
	now := time.Now() // the stops came after the end was held: times go forward
	for _, e := range h.held {
		e.Time = now
		h.pass(e)
	}
	h.test, h.held = "", nil
}

func (h *endHold) Event(e report.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.Test == h.test && h.test != "" {
		switch e.Kind {
		case report.ConsoleLog, report.Capture, report.TestEnd:
			h.held = append(h.held, e)
			return
		}
	}
	h.pass(e)
}

func (h *endHold) pass(e report.Event) {
	for _, s := range h.to {
		s.Event(e)
	}
}

func (h *endHold) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, s := range h.to {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
