package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// runUp is `vmlab up FILE`: boot every machine of the file and keep them
// running in the foreground, reachable through the lab's control socket
// (vmlab shell, console, status, down), until Ctrl-C or vmlab down.
// Exit codes: 0 when stopped that way, 1 when a machine failed to boot
// (the others stay up until then; with none up, at once), 2 on bad usage
// or a bad file, 3 when vmlab could not run.
func runUp(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "up", "FILE.star")
	var bf bootFlags
	bf.register(fs)
	name := fs.String("lab", "", "the lab's `name`, for -lab in other commands (default: the file's base name)")
	state := fs.String("state", "", "keep each machine's disk in `dir` across runs, and reuse it")
	out := fs.String("out", "", "write console logs and captures to `dir` (default: a temporary directory, removed when the lab stops)")
	verbose := fs.Bool("v", false, "show the machines' consoles as they go")
	if ok, code := parseMixed(e, fs, args, func() bool { return fs.NArg() == 1 }); !ok {
		return code
	}
	path := fs.Arg(0)
	files, err := loadAll(ctx, []string{path}, defaultLoadTimeout)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	labName := *name
	if labName == "" {
		labName = control.DefaultName(path)
	}
	if err := control.CheckName(labName); err != nil {
		e.errorf("-lab: %v", err)
		return exitUsage
	}
	if err := control.CheckFree(labName, e.errorf); err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	dir, removeDir, code, err := prepareOutputs(*out, "")
	if err != nil {
		e.errorf("%v", err)
		return code
	}
	defer func() {
		if removeDir {
			machine.RemoveTempDir(dir)
		}
	}()
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitInternal
	}
	u := &upRun{e: e, name: labName, verbose: *verbose, live: upLive(e)}
	if u.live != nil {
		defer u.live.Close() // last: the machines stopped, their last lines are out
	}
	return u.run(ctx, files[0], boot, dir, *state)
}

// upRun is one vmlab up: the lab, its server and what it prints.
type upRun struct {
	e       *env
	name    string
	verbose bool
	console *report.Queue // console lines to stderr (-v)
	// live is the terminal's live block, a line per machine, with
	// everything up prints written above it; nil when stdout and stderr
	// are not one terminal: plain lines then.
	live *report.Live
}

// upLive is the live block for vmlab up when stdout and stderr are the
// same terminal, which can redraw (see report.TerminalFor), else nil.
func upLive(e *env) *report.Live {
	opts := report.TerminalFor(e.stdout, false)
	if !opts.Progress || !sameFile(e.stdout, e.stderr) {
		return nil
	}
	return report.NewLive(e.stdout, opts)
}

// sameFile reports whether a and b are the same open file (a terminal
// both stdout and stderr are).
func sameFile(a, b io.Writer) bool {
	fa, ok := a.(*os.File)
	fb, ok2 := b.(*os.File)
	if !ok || !ok2 {
		return false
	}
	sa, err := fa.Stat()
	sb, err2 := fb.Stat()
	return err == nil && err2 == nil && os.SameFile(sa, sb)
}

func (u *upRun) run(ctx context.Context, file *script.File, boot *machine.Boot, dir, state string) int {
	u.console = report.NewQueue(func(ev report.Event) { u.print(u.e.stderr, ev.Machine+": "+agentproto.ElideBootParam(ev.Text)) }, report.ConsoleQueueSize)
	defer u.console.Close() // after the lab's Close: the machines' last lines are in
	l, st, err := openLab(ctx, file, boot, dir, state, u.configure, u.logf)
	if err != nil {
		u.logf("%v", err)
		return exitUsage
	}
	if st != nil {
		defer st.Close() // after the machines stopped
	}
	defer l.Close()
	abs, _ := filepath.Abs(file.Name)
	srv, err := control.Listen(u.name, control.LabInfo{File: abs, Command: "up"}, control.LabBackend(l), u.logf)
	if err != nil {
		u.logf("%v", err)
		return exitUsage
	}
	defer srv.Close() // after the machines stop: vmlab down returns then
	// vmlab down while the machines boot cuts the boots short.
	boots, stopBoots := context.WithCancel(ctx)
	go func() {
		select {
		case <-srv.DownRequested():
			stopBoots()
		case <-boots.Done():
		}
	}()
	failed := startAll(boots, l)
	stopBoots()
	// A signal while the machines boot is an interruption (128+N); once
	// the lab has said it is up, Ctrl-C is how it is meant to stop (0).
	select {
	case <-srv.DownRequested():
		if ctx.Err() == nil {
			u.logf("vmlab down while the machines booted: stopping lab %s", u.name)
			srv.Stopping("vmlab down")
			stopAll(l)
			return exitOK
		}
	default:
	}
	if ctx.Err() != nil {
		u.logf("%v: stopping the lab", context.Cause(ctx))
		srv.Stopping(fmt.Sprintf("vmlab up was %v", context.Cause(ctx)))
		stopAll(l)
		return interruptedCode(ctx)
	}
	if failed == len(l.Names()) {
		u.logf("no machine of lab %s came up: stopping it", u.name)
		srv.Stopping("no machine came up")
		stopAll(l)
		return exitFail
	}
	u.printLab(srv, l, state)
	select {
	case <-ctx.Done():
		u.logf("%v: stopping lab %s", context.Cause(ctx), u.name)
		srv.Stopping(fmt.Sprintf("vmlab up was %v", context.Cause(ctx)))
	case <-srv.DownRequested(): // the server said so
		srv.Stopping("vmlab down")
	}
	stopAll(l)
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

// openLab builds the lab of a loaded file, its machines not started:
// configure adds each machine's wiring (callbacks), and a state directory
// (when not "") keeps their disks across runs, machine images are built
// or found in the cache with progress to logf; the caller closes the
// returned State (nil without one) after the lab.
func openLab(ctx context.Context, file *script.File, boot *machine.Boot, dir, stateDir string, configure func(*machine.Config), logf func(string, ...any)) (*lab.Lab, *machine.State, error) {
	cfgs := make([]machine.Config, len(file.Specs))
	for i, s := range file.Specs {
		cfgs[i] = machine.Config{Machine: s}
		configure(&cfgs[i])
	}
	var state *machine.State
	if stateDir != "" {
		var err error
		if state, err = machine.ApplyState(cfgs, stateDir, file.Name); err != nil {
			return nil, nil, fmt.Errorf("-state: %w", err)
		}
	}
	err := lab.PrepareImages(ctx, boot, cfgs, nil, logf)
	var l *lab.Lab
	if err == nil {
		l, err = lab.New(boot, dir, cfgs, logf)
	}
	if err != nil {
		if state != nil {
			state.Close()
		}
		return nil, nil, err
	}
	return l, state, nil
}

// configure wires a machine into the terminal: its boots and stops on
// the live block, or its boots as lines on stderr; its console with -v.
func (u *upRun) configure(c *machine.Config) {
	name := c.Name
	c.Logf = u.logf
	if u.live != nil {
		c.OnBoot, c.OnStop = u.blockBoot(name), u.blockStop(name)
	} else {
		c.OnBoot = u.bootLine(name)
	}
	if u.verbose {
		c.OnConsole = func(l machine.Line) { u.console.Emit(report.Event{Machine: name, Text: l.Text}) }
	}
}

// blockBoot is a machine's OnBoot on the live block: its line booting,
// then up or failed (the whole error printed above, the block has its
// first line).
func (u *upRun) blockBoot(name string) func(machine.BootNote) {
	return func(n machine.BootNote) {
		ev := report.Event{Kind: report.BootStart, Machine: name}
		if n.Done {
			ev.Kind = report.Boot
			if n.Err != nil {
				ev.Error = n.Err.Error()
				u.logf("%s: failed to boot: %s", name, withoutName(name, n.Err))
			}
		}
		u.live.Event(ev)
	}
}

// blockStop is a machine's OnStop on the live block: stopped, or down
// with why (the machine's Logf says it went down).
func (u *upRun) blockStop(name string) func(machine.StopNote) {
	return func(n machine.StopNote) {
		ev := report.Event{Kind: report.Stop, Machine: name}
		if n.Err != nil {
			ev.Error = n.Err.Error()
		}
		u.live.Event(ev)
	}
}

// bootLine is a machine's OnBoot without the live block: a line on
// stderr as each boot starts and ends.
func (u *upRun) bootLine(name string) func(machine.BootNote) {
	return func(n machine.BootNote) {
		switch {
		case !n.Done:
			u.logf("%s: booting", name)
		case n.Err != nil:
			u.logf("%s: failed to boot: %s", name, withoutName(name, n.Err))
		default:
			u.logf("%s: up in %.1fs", name, n.Took.Seconds())
		}
	}
}

// logf says something on stderr, "vmlab: " first (above the live block
// when there is one).
func (u *upRun) logf(format string, args ...any) {
	u.print(u.e.stderr, "vmlab: "+fmt.Sprintf(format, args...))
}

// print writes text and a newline to w, or above the live block when
// there is one (w is then the same terminal).
func (u *upRun) print(w io.Writer, text string) {
	if u.live != nil {
		u.live.Print(text)
		return
	}
	fmt.Fprintln(w, text)
}

// startAll boots every machine at once and says how many failed (their
// errors were told through OnBoot).
func startAll(ctx context.Context, l *lab.Lab) (failed int) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, name := range l.Names() {
		m := l.Machine(name)
		wg.Go(func() {
			if err := m.Start(ctx); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// withoutName is a machine's error without the machine's name in front,
// for a line that names it already.
func withoutName(name string, err error) string {
	return strings.TrimPrefix(err.Error(), name+": ")
}

// stopGrace bounds a clean shutdown of the machines when the lab stops;
// past it they are killed (Close).
const stopGrace = 30 * time.Second

// stopAll shuts every running machine down cleanly, at once.
func stopAll(l *lab.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, name := range l.Names() {
		m := l.Machine(name)
		wg.Go(func() { m.Shutdown(ctx) })
	}
	wg.Wait()
}

// printLab prints each machine's state, addresses and forwards, where
// their disks are kept (with -state), and how to reach the lab.
func (u *upRun) printLab(srv *control.Server, l *lab.Lab, state string) {
	st := control.LabStatus{LabInfo: srv.Info(), Machines: control.LabBackend(l).Machines()}
	var b strings.Builder
	printMachines(&b, st.Machines)
	if state != "" {
		if abs, err := filepath.Abs(state); err == nil {
			state = abs
		}
		fmt.Fprintf(&b, "disks kept in %s: vmlab up -state with it reuses them next time\n", state)
	}
	sel := ""
	if others, _ := control.Labs(nil); len(others) > 1 {
		sel = " -lab " + u.name
	}
	fmt.Fprintf(&b, "lab %s is up: vmlab shell%s MACHINE, vmlab console%s MACHINE, vmlab status, vmlab down%s; Ctrl-C stops it",
		u.name, sel, sel, sel)
	u.print(u.e.stdout, b.String())
}

// printMachines prints one line per machine: name, state, addresses and
// forwards, then why a failed machine went down.
func printMachines(w io.Writer, ms []control.MachineStatus) {
	width := 0
	for _, m := range ms {
		width = max(width, len(m.Name))
	}
	for _, m := range ms {
		var parts []string
		for _, i := range m.Interfaces {
			parts = append(parts, i.Name+" "+strings.Join(i.Addrs, " "))
		}
		for _, f := range m.Forwards {
			parts = append(parts, fmt.Sprintf("127.0.0.1:%d -> %d", f.HostPort, f.GuestPort))
		}
		if m.VNC != "" {
			parts = append(parts, "screen: vncviewer "+m.VNC)
		}
		fmt.Fprintf(w, "  %-*s  %-7s  %s\n", width, m.Name, m.State, strings.Join(parts, ", "))
		if m.Error != "" {
			fmt.Fprintf(w, "  %-*s  %s\n", width, "", firstLine(m.Error))
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
