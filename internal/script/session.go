package script

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// Session is a file's machines on one lab, kept up across many calls: its
// tests (RunTest) and REPL chunks (Eval). File.Run is a session that runs
// one test and closes. The machines boot on their first use, as in a test
// (a method call, start(), start_all()).
//
// One call runs at a time: a second waits for the first. Each call takes
// its own context, and its end cancels only that call (its Starlark
// thread and its machine calls); the session and its machines stay up
// until Close.
type Session struct {
	file    *File
	r       *run
	console *report.Queue // the machines' console lines, on their way to the Emitter
	logs    []string      // each machine's console.log, in file.Specs order

	mu      sync.Mutex          // held by the running call
	globals starlark.StringDict // the REPL's, made by the first Eval
	leaving string              // what help() says about leaving; "" for vmlab repl's words

	closed func() // what File.OnLab returned; nil without one

	closeOnce sync.Once
	closeErr  error
}

// Open boots nothing: it makes the lab of the file's machines, whose files
// (console logs, captures) go to outDir, and returns the session that
// calls run on. ctx bounds the session's life: the boots that start()
// leaves running stop when it ends. Events go to rep; those of REPL
// chunks carry the Test "FILE.repl" (no test has that name), those of a
// test its name, as vmlab run reports them.
func (file *File) Open(ctx context.Context, boot *machine.Boot, outDir string, rep Emitter) (*Session, error) {
	return file.open(ctx, boot, outDir, rep, file.TestID("repl"))
}

func (file *File) open(ctx context.Context, boot *machine.Boot, outDir string, rep Emitter, label string) (*Session, error) {
	r := &run{ctx: ctx, life: ctx, file: file, test: label, out: outDir, rep: rep}
	logf := func(format string, args ...any) {
		rep.Emit(report.Event{Kind: report.Log, Test: r.testID(), Text: fmt.Sprintf(format, args...)})
	}
	console := report.NewQueue(rep.Emit, report.ConsoleQueueSize)
	cfgs := make([]machine.Config, len(file.Specs))
	for i, s := range file.Specs {
		c := machine.Config{Machine: s, DiskImage: file.DiskImages[s.Name]}
		if file.Coverage != "" {
			c.Coverage = machine.Coverage{Dir: coverage.MachineDir(file.Coverage, label, s.Name), Test: label}
		}
		c.OnConsole = consoleEvents(console, r, s.Name)
		c.OnBoot = bootEvents(r, s.Name)
		c.OnStop = stopEvents(r, s.Name)
		c.OnServiceExit = serviceEvents(console, r, s.Name)
		cfgs[i] = c
	}
	err := lab.PrepareImages(ctx, boot, cfgs, nil, logf)
	var l *lab.Lab
	if err == nil {
		l, err = lab.New(boot, outDir, cfgs, logf)
	}
	if err != nil {
		console.Close()
		return nil, err
	}
	r.lab = l
	logs := make([]string, len(file.Specs))
	for i, s := range file.Specs {
		logs[i] = filepath.Join(l.Machine(s.Name).Dir(), "console.log")
	}
	sess := &Session{file: file, r: r, console: console, logs: logs}
	if file.OnLab != nil {
		sess.closed = file.OnLab(label, l)
	}
	return sess, nil
}

// bootEvents is a machine's OnBoot: BootStart when a boot starts, Boot
// when it ended, for the test running then.
func bootEvents(r *run, machineName string) func(machine.BootNote) {
	return func(n machine.BootNote) {
		if !n.Done {
			r.rep.Emit(report.Event{Kind: report.BootStart, Test: r.testID(), Machine: machineName})
			return
		}
		ev := report.Event{Kind: report.Boot, Test: r.testID(), Machine: machineName, Duration: n.Took, Text: n.Stages}
		if n.Err != nil {
			ev.Error = n.Err.Error()
		}
		r.rep.Emit(ev)
	}
}

// stopEvents is a machine's OnStop: a Stop event, with why when the
// machine went down unasked, for the test running then.
func stopEvents(r *run, machineName string) func(machine.StopNote) {
	return func(n machine.StopNote) {
		ev := report.Event{Kind: report.Stop, Test: r.testID(), Machine: machineName}
		if n.Err != nil {
			ev.Error = n.Err.Error()
		}
		r.rep.Emit(ev)
	}
}

// serviceEvents is a machine's OnServiceExit: a ServiceExit event, for the
// test running then. It goes through the console's queue, in order with
// the console lines, since it is called on the agent channel's reader,
// which must not wait for the sinks; as a kept event, so that a console
// flood (a chatty service in a crash loop) does not drop it.
func serviceEvents(q *report.Queue, r *run, machineName string) func(agentproto.ServiceExit) {
	return func(e agentproto.ServiceExit) {
		out := strings.Join(e.Tail, "\n")
		if out != "" {
			out += "\n"
		}
		q.EmitKept(report.Event{Kind: report.ServiceExit, Test: r.testID(), Machine: machineName, Text: e.String(), Stdout: out})
	}
}

// Lab is the session's lab: its machines and networks, up or not.
func (s *Session) Lab() *lab.Lab { return s.r.lab }

// MachineGlobal is the name of a global that holds the machine called
// name (the first in order when several do, "machine" when it is the
// file's only one and no global holds it), or "": how a REPL user
// reaches it.
func (s *Session) MachineGlobal(name string) string {
	var globals []string
	for g, m := range s.file.machines {
		if m.name == name {
			globals = append(globals, g)
		}
	}
	if len(globals) > 0 {
		slices.Sort(globals)
		return globals[0]
	}
	if len(s.file.Specs) == 1 && s.file.Specs[0].Name == name {
		return "machine"
	}
	return ""
}

// File is the file the session runs.
func (s *Session) File() *File { return s.file }

// RunTest runs the file's test name ("test", "test_x") on the session's
// machines and reports it as vmlab run does (TestStart, its steps, the
// console logs and captures so far, TestEnd). It returns the test's
// failure, with everything still up: the machines keep what the test
// did to them.
func (s *Session) RunTest(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runTest(ctx, name)
}

func (s *Session) runTest(ctx context.Context, name string) error {
	if !slices.Contains(s.file.Tests, name) {
		return fmt.Errorf("run test %s of %s: no such test (its tests: %s)", name, s.file.Name, strings.Join(s.file.Tests, ", "))
	}
	fn := s.file.globals[name].(*starlark.Function)
	id := s.file.TestID(name)
	outer := s.r.current.Swap(&id) // a test run by a test run from a REPL chunk
	defer s.r.current.Store(outer)
	start := time.Now()
	s.r.rep.Emit(report.Event{Kind: report.TestStart, Test: id})
	_, err := s.callRecovered(ctx, id, fn)
	err = s.endTest(ctx, id, err)
	s.reportFiles()
	s.r.rep.Emit(s.file.testEnd(id, start, err))
	return err
}

// endTest completes a test function's outcome err: a boot start() left
// that failed unseen fails a test that passed, and a failed test gets its
// screenshots.
func (s *Session) endTest(ctx context.Context, test string, err error) error {
	if err == nil {
		err = s.r.unobservedStarts(ctx, test)
	}
	if err != nil {
		s.failureScreenshots(ctx)
	}
	return err
}

// call runs fn on a new thread bound to the session, under ctx: ctx's end
// cancels the thread and the machine calls it makes. A test function
// called from a REPL chunk is a call within a call: the outer one's
// context and subtests are back when it returns.
func (s *Session) call(ctx context.Context, name string, fn starlark.Callable) (starlark.Value, error) {
	thread, end := s.thread(ctx, name)
	defer end()
	return starlark.Call(thread, fn, nil, nil)
}

func (s *Session) callRecovered(ctx context.Context, name string, fn starlark.Callable) (v starlark.Value, err error) {
	defer recoverInto(&err)
	return s.call(ctx, name, fn)
}

// thread returns a Starlark thread for a call under ctx, and the function
// that ends the call.
func (s *Session) thread(ctx context.Context, name string) (*starlark.Thread, func()) {
	r := s.r
	outerCtx, outerPath := r.ctx, r.path
	r.ctx, r.path = ctx, nil
	thread := &starlark.Thread{Name: name, Print: func(_ *starlark.Thread, msg string) { r.log("", msg) }}
	thread.Load = func(*starlark.Thread, string) (starlark.StringDict, error) {
		return nil, fmt.Errorf("a vmlab file loads no other files; define what you need in %s or at the prompt", s.file.Name)
	}
	thread.SetLocal(runKey, r)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	return thread, func() {
		stop()
		r.ctx, r.path = outerCtx, outerPath
	}
}

// reportFiles reports the machines' console logs and the captures that
// exist now, for the test running (or the session's label).
func (s *Session) reportFiles() {
	id := s.r.testID()
	for i, spec := range s.file.Specs {
		if fileExists(s.logs[i]) {
			s.r.rep.Emit(report.Event{Kind: report.ConsoleLog, Test: id, Machine: spec.Name, File: s.logs[i]})
		}
	}
	for _, p := range mustGlob(filepath.Join(s.r.out, "vlan*.pcap")) {
		s.r.rep.Emit(report.Event{Kind: report.Capture, Test: id, File: p})
	}
}

// Close waits for the running call and the boots start() left running,
// stops the machines and the networks, delivers the consoles' last lines
// and reports the console logs and captures. Cancel the running call's
// context first not to wait for it. Close is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		if s.closed != nil {
			s.closed() // no new shells into machines that are stopping
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.r.waitStarts() // before the lab stops the machines
		s.closeErr = s.r.lab.Close()
		s.console.Close() // the machines are stopped: their last lines are in
		s.reportFiles()
	})
	return s.closeErr
}
