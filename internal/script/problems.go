package script

import (
	"cmp"
	"fmt"
	"slices"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/spec"
)

// checkHost is the host the declarations are checked against at load
// time: the running one, booting the kernel vmlab picks by default. Run
// checks again against the kernel it boots (lab.New), without positions.
var checkHost = spec.LocalHost

// declarationErrors returns every problem of the declared machines: the
// arguments machine() could not take, spec's checks of each machine and
// of all of them together. Each is placed at the keyword argument it is
// about, else at the machine() call, and they come in file order.
func declarationErrors(ms []*machineValue, f *syntax.File) []error {
	type placed struct {
		pos syntax.Position
		err error
	}
	var out []placed
	args := argPositions(f)
	at := func(m *machineValue, p spec.Problem) {
		if p.Machine == "" && p.Field != "name" {
			p.Machine = m.name
		}
		if p.Field == "display" && m.displayCall != "" {
			p.Err = fmt.Errorf("%w (the machine has a display because the file calls %s)", p.Err, m.displayCall)
		}
		pos := m.pos
		if kw, ok := args[key(m.pos)][p.Field]; ok && p.Field != "" {
			pos = kw
		}
		out = append(out, placed{pos, fmt.Errorf("%s: %w", pos, p)})
	}
	specs := make([]spec.Machine, len(ms))
	for i, m := range ms {
		for _, p := range m.problems {
			at(m, p)
		}
		specs[i] = m.spec
	}
	for _, p := range spec.CheckAll(specs, checkHost()) {
		at(ms[p.Index], p)
	}
	slices.SortStableFunc(out, func(a, b placed) int {
		return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Col, b.pos.Col))
	})
	errs := make([]error, len(out))
	for i, p := range out {
		errs[i] = p.err
	}
	return errs
}

type posKey struct{ line, col int32 }

func key(p syntax.Position) posKey { return posKey{p.Line, p.Col} }

// argPositions maps each call in the file (by the position Starlark gives
// the call) to where each of its arguments is, by keyword; a positional
// argument counts as machine()'s parameter in its place.
func argPositions(f *syntax.File) map[posKey]map[string]syntax.Position {
	out := make(map[posKey]map[string]syntax.Position)
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		args := make(map[string]syntax.Position)
		for i, a := range call.Args {
			if b, ok := a.(*syntax.BinaryExpr); ok && b.Op == syntax.EQ {
				if id, ok := b.X.(*syntax.Ident); ok {
					args[id.Name] = id.NamePos
				}
				continue
			}
			if i < len(machineArgs) {
				start, _ := a.Span()
				args[machineArgs[i].name] = start
			}
		}
		out[key(call.Lparen)] = args
		return true
	})
	return out
}

// partialErrors returns the problems of the machines a top level declared
// before it failed, named after the globals it had assigned by then.
func partialErrors(decl *declarations, globals starlark.StringDict, f *syntax.File) []error {
	for name, v := range globals {
		if m, ok := v.(*machineValue); ok && m.name == "" {
			m.name = name
		}
	}
	var named []*machineValue
	for _, m := range decl.machines {
		if m.name != "" {
			m.spec.Name = m.name
			named = append(named, m)
		}
	}
	return declarationErrors(named, f)
}
