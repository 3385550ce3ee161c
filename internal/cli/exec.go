package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// runExec boots one machine, runs a command, streams its output and exits
// with the command's status.
func runExec(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "exec", "COMMAND...")
	var bf bootFlags
	bf.register(fs)
	name := fs.String("name", "machine", "the machine's `name` (and hostname)")
	timeout := fs.Duration("timeout", 0, "command timeout (default: the machine's default, 15m under TCG)")
	verbose := fs.Bool("v", false, "show the console as it boots")
	if ok, code := parse(fs, args, func() bool { return fs.NArg() > 0 }); !ok {
		return code
	}
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	cfg := machine.Config{Name: *name, Boot: boot, MemoryMiB: bf.memory, CPUs: bf.cpus}
	if *verbose {
		// A queue in front of stderr: a paused terminal must not stall
		// the guest's console.
		q := report.NewQueue(func(ev report.Event) { fmt.Fprintf(e.stderr, "%s: %s\n", *name, ev.Text) }, report.ConsoleQueueSize)
		defer q.Close() // after m.Close below: the machine's last lines are in
		cfg.OnConsole = func(l machine.Line) { q.Emit(report.Event{Kind: report.Console, Text: l.Text}) }
		cfg.Logf = func(format string, args ...any) { e.errorf(format, args...) }
	}
	m, err := machine.New(cfg)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	defer m.Close()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	fmt.Fprintf(e.stderr, "vmlab: %s booted in %.2fs\n", *name, time.Since(start).Seconds())
	res, err := m.Execute(ctx, strings.Join(fs.Args(), " "), machine.Timeout(*timeout), machine.Stream(e.stdout, e.stderr))
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	if err := m.Shutdown(ctx); err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	if res.Status != 0 {
		return min(max(res.Status, 1), 255)
	}
	return exitOK
}
