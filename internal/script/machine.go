package script

import (
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

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
	// displaySaid: the declaration gives display, True or False; one that
	// does not gets a display when the file calls a screen method on it
	// (implyDisplays).
	displaySaid bool
	// displayCall is the call that gave it one ("desk.screenshot() at
	// f.star:7:5"), for the declaration's errors about it.
	displayCall string
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
	meth, ok := methodByName[name]
	if !ok {
		return nil, nil // starlark reports "machine has no .x field or method"
	}
	return starlark.NewBuiltin(name, meth.builtin).BindReceiver(m), nil
}

func (m *machineValue) AttrNames() []string { return methodNames }
