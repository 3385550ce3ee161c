package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
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
	decl := execSpec(*name, bf)
	if ps := decl.Check(spec.LocalHost()); len(ps) > 0 {
		for _, p := range ps {
			e.errorf("%s: %v", execFlags[p.Field], p)
		}
		return exitUsage
	}
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	cfg := machine.Config{Machine: decl, Boot: boot}
	if *verbose {
		cfg.OnConsole = func(l machine.Line) { fmt.Fprintf(e.stderr, "%s: %s\n", *name, l.Text) }
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

// execFlags are the flags of `vmlab exec` by the declaration's field they
// set (spec.Machine's keywords); a problem with a field names its flag.
var execFlags = map[string]string{"name": "-name", "memory": "-memory", "cpus": "-cpus"}

// execSpec is the machine `vmlab exec` declares with its flags.
func execSpec(name string, bf bootFlags) spec.Machine {
	s := spec.New(name)
	s.MemoryMiB, s.CPUs = bf.memory, bf.cpus
	return s
}
