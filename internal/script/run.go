package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// runKey is the thread-local key of the running test.
const runKey = "vmlab.run"

// Emitter receives a run's events (report.Reporter is one).
type Emitter interface{ Emit(report.Event) }

// run is the state a session's calls share: the lab, the reporting and
// the machine calls' context. One call runs at a time (Session's mutex),
// so ctx and path change only between calls.
type run struct {
	// ctx is the running call's context: a REPL chunk's or a test's.
	ctx context.Context
	// life is the session's context, which outlives the calls: start()'s
	// boots run under it, so `a.start()` in a REPL chunk keeps booting
	// after the chunk returned.
	life context.Context
	file *File
	test string // the events' Test between tests: the session's label
	// current is the id of the test RunTest runs, nil between tests; the
	// console readers read it at any time, hence atomic.
	current atomic.Pointer[string]
	lab     *lab.Lab
	out     string // the session's output directory
	rep     Emitter
	path    []string // the subtests we are in

	starts starts // boots start() left running

	conditions []*condition // active polling conditions, innermost last
	checking   bool         // a condition is being checked: do not recurse
	// quietConsole is serial_stdout_off()'s: console lines are marked
	// Quiet, which the terminal does not show. The machines' console
	// readers read it.
	quietConsole atomic.Bool
}

// condition is a polling_condition: fn must hold before every machine call
// while it is active, checked at most once per interval.
type condition struct {
	fn       starlark.Callable
	interval time.Duration
	last     time.Time
}

// checkConditions runs the active polling conditions that are due. A
// condition fails when fn fails or returns a false value other than None.
func (r *run) checkConditions(thread *starlark.Thread) error {
	if r.checking {
		return nil
	}
	r.checking = true
	defer func() { r.checking = false }()
	for _, c := range r.conditions {
		if time.Since(c.last) < c.interval {
			continue
		}
		c.last = time.Now()
		v, err := starlark.Call(thread, c.fn, nil, nil)
		if err == nil && v != starlark.None && !v.Truth() {
			err = fmt.Errorf("returned %s", v)
		}
		if err != nil {
			msg, _ := splitError(err)
			return fmt.Errorf("polling condition %s failed: %s", c.fn.Name(), msg)
		}
	}
	return nil
}

// Run runs one test of the file on a fresh lab whose files (console logs,
// captures) go to outDir. The error is the test's failure, if any; it has
// been reported as a TestEnd event already. It is Open, the test, Close:
// the machines are stopped and their logs reported before the TestEnd.
func (file *File) Run(ctx context.Context, test string, boot *machine.Boot, outDir string, rep Emitter) error {
	fn, ok := file.globals[test].(*starlark.Function)
	if !ok {
		return fmt.Errorf("%s: no test %q", file.Name, test)
	}
	start := time.Now()
	id := file.TestID(test)
	rep.Emit(report.Event{Kind: report.TestStart, Test: id})
	err := file.runRecovered(ctx, fn, id, boot, outDir, rep)
	rep.Emit(file.testEnd(id, start, err))
	return err
}

// testEnd is the TestEnd event of the test id that started at start and
// ended with err.
func (file *File) testEnd(id string, start time.Time, err error) report.Event {
	end := report.Event{Kind: report.TestEnd, Test: id, Passed: err == nil, Duration: time.Since(start)}
	if err != nil {
		end.Error, end.Where = splitError(err)
		end.Source = file.sourceLine(err)
	}
	return end
}

// sourceLine is the script line a failure happened on, the innermost frame
// in the file, as "file:line: text" for the reports; "" when there is
// none (the error has no Starlark stack).
func (file *File) sourceLine(err error) string {
	var evalErr *starlark.EvalError
	if !errors.As(err, &evalErr) {
		return ""
	}
	stack := evalErr.CallStack
	for i := len(stack) - 1; i >= 0; i-- {
		pos := stack[i].Pos
		if pos.Filename() != file.Name {
			continue
		}
		srcLines := strings.Split(string(file.src), "\n")
		if n := int(pos.Line); n >= 1 && n <= len(srcLines) {
			return fmt.Sprintf("%s:%d: %s", file.Name, n, strings.TrimSpace(srcLines[n-1]))
		}
		return ""
	}
	return ""
}

// TestID names a test in reports: the file's base name and the function,
// "client_server.test", so equally named tests of two files stay apart.
func (file *File) TestID(test string) string {
	base := filepath.Base(file.Name)
	return strings.TrimSuffix(base, filepath.Ext(base)) + "." + test
}

// InternalError is a test's failure that is vmlab's fault, not the
// test's: a panic in the driver's code (a builtin, the machine API),
// recovered so the other tests and the reports go on.
type InternalError struct {
	Value any    // what panicked
	Stack []byte // the panicking goroutine's stack
}

func (e *InternalError) Error() string {
	return fmt.Sprintf("internal error in vmlab (please report it with the stack below): panic: %v", e.Value)
}

// runRecovered is runTest with a panic turned into an *InternalError.
// runTest's deferred steps (stopping the machines) have run by then.
func (file *File) runRecovered(ctx context.Context, fn *starlark.Function, test string, boot *machine.Boot, outDir string, rep Emitter) (err error) {
	defer recoverInto(&err)
	return file.runTest(ctx, fn, test, boot, outDir, rep)
}

// recoverInto, deferred, turns a panic into an *InternalError in *err. The
// goroutines a builtin starts (start_all's boots) defer it too: a panic
// there would end the whole run, not just the test.
func recoverInto(err *error) {
	if v := recover(); v != nil {
		*err = &InternalError{Value: v, Stack: debug.Stack()}
	}
}

// consoleEvents is a machine's OnConsole: each line becomes a Console event
// on q, which never blocks the machine's console reader (and so the guest)
// however slow the sinks are. The line belongs to the test running then;
// quietConsole says serial_stdout_off() is in force.
func consoleEvents(q *report.Queue, r *run, machineName string) func(machine.Line) {
	return func(l machine.Line) {
		q.Emit(report.Event{Kind: report.Console, Test: r.testID(), Machine: machineName, Text: l.Text, Reason: l.Reason, Quiet: r.quietConsole.Load()})
	}
}

// runTest runs fn, the test id, on a session of its own that it closes.
func (file *File) runTest(ctx context.Context, fn *starlark.Function, id string, boot *machine.Boot, outDir string, rep Emitter) error {
	s, err := file.open(ctx, boot, outDir, rep, id)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.call(ctx, id, fn)
	return s.endTest(ctx, id, err)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func mustGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

// splitError separates a failure's message from the script position and
// backtrace Starlark adds.
func splitError(err error) (msg, where string) {
	var evalErr *starlark.EvalError
	var internal *InternalError
	switch {
	case errors.As(err, &internal):
		// The script's line (when a builtin's goroutine panicked), then
		// where in vmlab.
		where := string(internal.Stack)
		if errors.As(err, &evalErr) {
			where = backtrace(evalErr) + "\n\n" + where
		}
		return internal.Error(), where
	case errors.As(err, &evalErr):
		return evalErr.Msg, backtrace(evalErr)
	}
	return err.Error(), ""
}

func runOf(thread *starlark.Thread, what string) (*run, error) {
	r, ok := thread.Local(runKey).(*run)
	if !ok {
		return nil, fmt.Errorf("%s: only a test function can do this, not the top level of the file", what)
	}
	return r, nil
}

// testID is the Test of the events: the running test's id, or the
// session's label between tests.
func (r *run) testID() string {
	if id := r.current.Load(); id != nil {
		return *id
	}
	return r.test
}

func (r *run) log(machineName, text string) {
	r.rep.Emit(report.Event{Kind: report.Log, Test: r.testID(), Path: r.pathCopy(), Machine: machineName, Text: text})
}

func (r *run) pathCopy() []string { return append([]string(nil), r.path...) }

// machine returns the running machine a script value stands for.
func (r *run) machine(m *machineValue) *machine.Machine { return r.lab.Machine(m.name) }

// boot starts the machine unless it runs or died (a dead machine's calls
// report how it died); the machine reports the boot (OnBoot).
func (r *run) boot(m *machineValue) error {
	if err := r.awaitStart(m); err != nil {
		return err
	}
	mm := r.machine(m)
	if !mm.NeedsBoot() {
		return nil
	}
	return mm.Start(r.ctx)
}

// expect says which exit statuses a command may end with.
type expect int

const (
	anyStatus expect = iota // execute
	success                 // succeed
	failure                 // fail
)

// command runs one command on a machine and reports it. A status the
// script did not expect is an error, and the event carries it (so reports
// tell a failing command from an expected non-zero exit).
func (r *run) command(m *machineValue, cmd string, timeout time.Duration, want expect) (machine.Result, error) {
	return r.reported(m, cmd, want, func() (machine.Result, error) {
		return r.machine(m).Execute(r.ctx, cmd, machine.Timeout(timeout))
	})
}

// reported runs a command of the timeline: exec runs it, cmd is how the
// reports show it.
func (r *run) reported(m *machineValue, cmd string, want expect, exec func() (machine.Result, error)) (machine.Result, error) {
	r.rep.Emit(report.Event{Kind: report.CommandStart, Test: r.testID(), Path: r.pathCopy(), Machine: m.name, Command: cmd})
	start := time.Now()
	res, err := exec()
	ev := report.Event{Kind: report.Command, Test: r.testID(), Path: r.pathCopy(), Machine: m.name, Command: cmd,
		Stdout: res.Stdout, Stderr: res.Stderr, StdoutFile: res.StdoutFile, StderrFile: res.StderrFile,
		Duration: time.Since(start)}
	outcome(&ev, err == nil, res.Status, err)
	if err == nil && (want == success && res.Status != 0 || want == failure && res.Status == 0) {
		err = commandError(m, cmd, res, want == success)
	}
	if err != nil {
		ev.Error = err.Error()
	}
	r.rep.Emit(ev)
	return res, err
}

// commandError is the failure of succeed/fail, with the command's output.
func commandError(m *machineValue, cmd string, res machine.Result, wantSuccess bool) error {
	e := &machine.ExitError{Machine: m.name, Command: cmd, Status: res.Status, Signal: res.Signal,
		Stdout: res.Stdout, Stderr: res.Stderr, WantSuccess: wantSuccess}
	return errors.New(strings.TrimSpace(e.Error()))
}
