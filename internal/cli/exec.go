package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/attach"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/spec"
)

// runExec boots one machine, runs a command with vmlab's stdin, stdout and
// stderr attached (a terminal in the guest when they are terminals) and
// exits with the command's status.
func runExec(ctx context.Context, e *env, args []string) int {
	fs, ef := newExecFlags(e)
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() > 0 }); !ok {
		return code
	}
	decl := ef.spec()
	if ps := decl.Check(spec.LocalHost()); len(ps) > 0 {
		for _, p := range ps {
			e.errorf("%s: %v", execFlags[p.Field], p)
		}
		return exitUsage
	}
	boot, err := ef.boot.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	cfg := machine.Config{Machine: decl, Boot: boot}
	if ef.verbose {
		// A queue in front of stderr: a paused terminal must not stall
		// the guest's console.
		q := report.NewQueue(func(ev report.Event) { fmt.Fprintf(e.stderr, "%s: %s\n", ef.name, agentproto.ElideBootParam(ev.Text)) }, report.ConsoleQueueSize)
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
	fmt.Fprintf(e.stderr, "vmlab: %s booted in %.2fs\n", ef.name, time.Since(start).Seconds())
	res, err := attachExec(ctx, e, m, strings.Join(fs.Args(), " "), ef.timeout)
	if err != nil {
		e.errorf("%v", err)
		if context.Cause(ctx) != nil {
			return interruptedCode(ctx)
		}
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

// attachExec runs command with sh -c in m, attached to vmlab's own stdin,
// stdout and stderr (attach.Run); a caller in the same process that gave
// Main other writers gets the output there and no input. A positive
// timeout bounds it.
func attachExec(ctx context.Context, e *env, m *machine.Machine, command string, timeout time.Duration) (machine.ShellResult, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the -timeout of %v passed", timeout))
		defer cancel()
	}
	argv := []string{"/bin/sh", "-c", command}
	stdout, okOut := e.stdout.(*os.File)
	stderr, okErr := e.stderr.(*os.File)
	if !okOut || !okErr {
		return m.Shell(ctx, machine.ShellOptions{Command: argv, Stdout: e.stdout, Stderr: e.stderr})
	}
	return attach.Run(ctx, os.Stdin, stdout, stderr, argv, m.Shell)
}

// execFlags are the flags of `vmlab exec` by the declaration's field they
// set (spec.Machine's keywords); a problem with a field names its flag.
var execFlags = map[string]string{"name": "-name", "memory": "-memory", "cpus": "-cpus", "disk_size": "-disk-size",
	"forward_ports": "-forward", "init": "-init"}

// execFlagValues are `vmlab exec`'s flags.
type execFlagValues struct {
	boot     bootFlags
	name     string
	timeout  time.Duration
	verbose  bool
	diskMiB  int
	forwards []spec.Forward
	init     string
}

func newExecFlags(e *env) (*flag.FlagSet, *execFlagValues) {
	fs := newFlagSet(e, "exec", "COMMAND...")
	ef := &execFlagValues{}
	ef.boot.register(fs)
	fs.StringVar(&ef.name, "name", "machine", "the machine's `name` (and hostname): "+spec.NameRule)
	fs.DurationVar(&ef.timeout, "timeout", 0, "stop the command after this `duration` (default: none)")
	fs.BoolVar(&ef.verbose, "v", false, "show the console as it boots")
	fs.StringVar(&ef.init, "init", "", "the guest's `init`: systemd boots the root's systemd (docs/systemd.md); default: vmlab's fast mode")
	fs.IntVar(&ef.diskMiB, "disk-size", spec.DefaultDiskMiB, "the size of the machine's own disk (its writable root) in `MiB`")
	fs.Func("forward", "make the host's 127.0.0.1:HOST reach the guest's port GUEST, as `HOST:GUEST` (0:GUEST picks a free port); repeatable",
		func(v string) error {
			host, guest, _ := strings.Cut(v, ":")
			h, err1 := strconv.Atoi(host)
			g, err2 := strconv.Atoi(guest)
			if err1 != nil || err2 != nil {
				return errors.New("want HOST:GUEST, two port numbers such as 8080:80")
			}
			ef.forwards = append(ef.forwards, spec.Forward{HostPort: h, GuestPort: g})
			return nil
		})
	return fs, ef
}

// spec is the machine the flags declare.
func (ef *execFlagValues) spec() spec.Machine {
	s := spec.New(ef.name)
	s.MemoryMiB, s.CPUs = ef.boot.memory, ef.boot.cpus
	s.DiskMiB = ef.diskMiB
	s.ForwardPorts = ef.forwards
	s.Init = ef.init
	return s
}
