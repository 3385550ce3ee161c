package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

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
// its events go to the terminal only (the reports hold the test as it
// ran). Leaving the REPL stops the machines; the test's result stands.
func (in *interactive) run(ctx, tctx context.Context, j job, boot *machine.Boot, outDir string, rep *report.Reporter) error {
	sw := newSwitchEmitter(rep, j.file.TestID("repl"))
	// The session outlives the test, but it is the test's lab to other
	// terminals, before and after the REPL takes over: FILE.TEST.
	labName := j.file.TestID(j.test)
	serveLabs(j.file, "run", func(string) string { return labName }, nil, in.e.errorf)
	sctx, endSession := context.WithCancelCause(ctx)
	defer endSession(nil)
	s, err := j.file.Open(sctx, boot, outDir, sw)
	if err != nil {
		id := j.file.TestID(j.test)
		rep.Emit(report.Event{Kind: report.TestStart, Test: id})
		rep.Emit(report.Event{Kind: report.TestEnd, Test: id, Error: err.Error()})
		return err
	}
	defer s.Close()
	err = s.RunTest(tctx, j.test)
	if err == nil && in.mode != "always" || ctx.Err() != nil {
		return err
	}
	events := newReplEvents(in.e.stdout, false)
	events.noSummary = true // the run's summary is the one
	sw.set(events)
	defer sw.set(rep) // Close's events are the run's
	in.announce(s, j, err)
	newREPL(in.e, s, events).run(ctx)
	events.left()
	endSession(errLeft) // a boot start() began at the REPL stops, not to be waited for
	events.Close()
	return err
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
	fmt.Fprintf(in.e.stderr, "vmlab: %s %s\nvmlab: REPL on its machines as the test left them: %s; help() says what is bound, Ctrl-D stops them and the run goes on; from another terminal: vmlab shell -lab %s MACHINE\n",
		j.file.TestID(j.test), what, strings.Join(states, ", "), j.file.TestID(j.test))
}

// switchEmitter passes events on to one emitter, which can change: a
// session's events go to the run's reports, then to the REPL. Those of
// the session outside its tests (its label, script.File.Open's) never go
// to the run's: they hold the tests as they ran, not what the REPL left
// (a boot it began, cut short; its machines stopping).
type switchEmitter struct {
	run   script.Emitter
	label string

	mu sync.Mutex
	to script.Emitter
}

func newSwitchEmitter(run script.Emitter, label string) *switchEmitter {
	return &switchEmitter{run: run, label: label, to: run}
}

func (sw *switchEmitter) set(to script.Emitter) {
	sw.mu.Lock()
	sw.to = to
	sw.mu.Unlock()
}

func (sw *switchEmitter) Emit(e report.Event) {
	sw.mu.Lock()
	to := sw.to
	sw.mu.Unlock()
	if to == sw.run && e.Test == sw.label {
		return
	}
	to.Emit(e)
}
