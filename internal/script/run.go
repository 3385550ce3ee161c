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

// run is one test function running on its own lab.
type run struct {
	ctx  context.Context
	file *File
	test string
	lab  *lab.Lab
	out  string // the test's output directory
	rep  Emitter
	path []string // the subtests we are in

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
// been reported as a TestEnd event already.
func (file *File) Run(ctx context.Context, test string, boot *machine.Boot, outDir string, rep Emitter) error {
	fn, ok := file.globals[test].(*starlark.Function)
	if !ok {
		return fmt.Errorf("%s: no test %q", file.Name, test)
	}
	start := time.Now()
	id := file.TestID(test)
	rep.Emit(report.Event{Kind: report.TestStart, Test: id})
	err := file.runRecovered(ctx, fn, id, boot, outDir, rep)
	end := report.Event{Kind: report.TestEnd, Test: id, Passed: err == nil, Duration: time.Since(start)}
	if err != nil {
		end.Error, end.Where = splitError(err)
		end.Source = file.sourceLine(err)
	}
	rep.Emit(end)
	return err
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
// however slow the sinks are. Quiet says serial_stdout_off() is in force.
func consoleEvents(q *report.Queue, test, machineName string, quiet *atomic.Bool) func(machine.Line) {
	return func(l machine.Line) {
		q.Emit(report.Event{Kind: report.Console, Test: test, Machine: machineName, Text: l.Text, Reason: l.Reason, Quiet: quiet.Load()})
	}
}

func (file *File) runTest(ctx context.Context, fn *starlark.Function, test string, boot *machine.Boot, outDir string, rep Emitter) error {
	logf := func(format string, args ...any) {
		rep.Emit(report.Event{Kind: report.Log, Test: test, Text: fmt.Sprintf(format, args...)})
	}
	console := report.NewQueue(rep.Emit, report.ConsoleQueueSize)
	defer console.Close() // when New fails; else after the lab's Close below
	r := &run{ctx: ctx, file: file, test: test, out: outDir, rep: rep}
	cfgs := make([]machine.Config, len(file.Specs))
	for i, s := range file.Specs {
		c := machine.Config{Machine: s, DiskImage: file.DiskImages[s.Name]}
		c.OnConsole = consoleEvents(console, test, s.Name, &r.quietConsole)
		c.OnBoot = func(n machine.BootNote) {
			if !n.Done {
				rep.Emit(report.Event{Kind: report.BootStart, Test: test, Machine: s.Name})
				return
			}
			ev := report.Event{Kind: report.Boot, Test: test, Machine: s.Name, Duration: n.Took, Text: n.Stages}
			if n.Err != nil {
				ev.Error = n.Err.Error()
			}
			rep.Emit(ev)
		}
		cfgs[i] = c
	}
	l, err := lab.New(boot, outDir, cfgs, logf)
	if err != nil {
		return err
	}
	consoleLogs := make([]string, len(file.Specs))
	for i, s := range file.Specs {
		consoleLogs[i] = filepath.Join(l.Machine(s.Name).Dir(), "console.log")
	}
	defer func() {
		l.Close()
		console.Close() // the machines are stopped: their last lines are in
		for i, s := range file.Specs {
			if fileExists(consoleLogs[i]) {
				rep.Emit(report.Event{Kind: report.ConsoleLog, Test: test, Machine: s.Name, File: consoleLogs[i]})
			}
		}
		for _, p := range mustGlob(filepath.Join(outDir, "vlan*.pcap")) {
			rep.Emit(report.Event{Kind: report.Capture, Test: test, File: p})
		}
	}()
	r.lab = l
	thread := &starlark.Thread{Name: test, Print: func(_ *starlark.Thread, msg string) { r.log("", msg) }}
	thread.SetLocal(runKey, r)
	defer r.waitStarts() // before the lab's Close
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	_, err = starlark.Call(thread, fn, nil, nil)
	return err
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

func (r *run) log(machineName, text string) {
	r.rep.Emit(report.Event{Kind: report.Log, Test: r.test, Path: r.pathCopy(), Machine: machineName, Text: text})
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
	r.rep.Emit(report.Event{Kind: report.CommandStart, Test: r.test, Path: r.pathCopy(), Machine: m.name, Command: cmd})
	start := time.Now()
	res, err := r.machine(m).Execute(r.ctx, cmd, machine.Timeout(timeout))
	ev := report.Event{Kind: report.Command, Test: r.test, Path: r.pathCopy(), Machine: m.name, Command: cmd,
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
