package script

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/spec"
)

// declKey is the thread-local key of the declarations made by the top level.
const declKey = "vmlab.declarations"

// declarations collects machine() calls while the top level runs.
type declarations struct {
	machines []*machineValue
}

// machineValue is a machine in a script: declared at top level, bound to a
// running machine while a test runs (through the thread's run).
type machineValue struct {
	name string // the declaration's name, or the global's that holds it
	pos  syntax.Position
	spec spec.Machine // Name is set when the file has loaded
	// problems are the arguments machine() could not take, each with its
	// keyword as Field; Load reports them with the others.
	problems []spec.Problem
}

var (
	_ starlark.Value    = (*machineValue)(nil)
	_ starlark.HasAttrs = (*machineValue)(nil)
)

func (m *machineValue) String() string        { return fmt.Sprintf("<machine %s>", m.name) }
func (m *machineValue) Type() string          { return "machine" }
func (m *machineValue) Freeze()               {}
func (m *machineValue) Truth() starlark.Bool  { return true }
func (m *machineValue) Hash() (uint32, error) { return starlark.String(m.name).Hash() }

func (m *machineValue) Attr(name string) (starlark.Value, error) {
	if name == "name" {
		return starlark.String(m.name), nil
	}
	fn, ok := methods[name]
	if !ok {
		return nil, nil // starlark reports "machine has no .x field or method"
	}
	if !slices.Contains(commandMethods, name) {
		fn = timed(fn)
	}
	return starlark.NewBuiltin(name, fn).BindReceiver(m), nil
}

func (m *machineValue) AttrNames() []string { return methodNames }

// commandMethods report each command they run themselves.
var commandMethods = []string{"succeed", "fail", "execute"}

// timed reports a method call (a wait, a copy, a power change) as a step
// of the test's timeline, with its duration and error, so reports show
// where the time went. A machine that boots for the call boots first: the
// boot is reported on its own and is not part of the call's time.
func timed(fn builtinFunc) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		r, ok := thread.Local(runKey).(*run)
		if !ok {
			return fn(thread, b, args, kwargs)
		}
		m := b.Receiver().(*machineValue)
		if !slices.Contains(noBoot, b.Name()) {
			if err := r.boot(m); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		v, err := fn(thread, b, args, kwargs)
		ev := report.Event{Kind: report.Command, Test: r.test, Path: r.pathCopy(), Machine: m.name,
			Command: callText(b.Name(), args, kwargs), Duration: time.Since(start)}
		if err != nil {
			ev.Error = err.Error()
		}
		r.rep.Emit(ev)
		return v, err
	}
}

// callText renders a call as the script wrote it: wait_for_unit("web").
func callText(name string, args starlark.Tuple, kwargs []starlark.Tuple) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, a.String())
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s = %s", kv[0].(starlark.String).GoString(), kv[1].String()))
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}
