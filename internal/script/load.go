// Package script owns vmlab's test files: Starlark scripts that declare
// machines at top level with machine(...) and test them in test functions,
// with the NixOS test driver's API in snake_case (succeed, wait_for_open_port,
// start_all, subtest, ...). Load checks a file completely, before any VM
// boots; Run runs one of its tests on a fresh lab; Open keeps a lab up
// across calls (a Session: the REPL's chunks, tests run one after another
// on the same machines).
package script

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/near"
	"github.com/vmlab/vmlab/internal/spec"
)

// fileOptions let NixOS Python test scripts port line by line: while loops,
// top-level control flow, sets, recursion and reassigned globals.
var fileOptions = &syntax.FileOptions{
	Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true,
}

// File is a loaded, checked test file.
type File struct {
	Name    string
	Specs   []spec.Machine // in declaration order
	Tests   []string       // test function names, in file order
	globals starlark.StringDict
	// machines maps a global's name to the machine it holds.
	machines map[string]*machineValue
	src      []byte // for the reports' failing line (sourceLine)

	// DiskImages are the machines' disk images by machine name, kept
	// across tests and runs (a state directory: vmlab run --keep-state);
	// nil: each test's machines get temporary disks.
	DiskImages map[string]string

	// Coverage is the run's coverage directory (vmlab run -coverage,
	// docs/coverage.md): each session's machines collect their coverage
	// data in coverage.MachineDir(Coverage, label, machine), the label
	// being the test's id. Empty: no coverage.
	Coverage string

	// OnLab, when set, is called with each session's label (a test's id,
	// "FILE.repl" for a REPL) and lab once the lab is made, its machines
	// not started; vmlab run and repl serve the lab on a control socket
	// there. The function it returns is called first thing when the
	// session closes.
	OnLab func(label string, l *lab.Lab) (closed func())
}

// Source returns the bytes the file was loaded from: what its tests run,
// whatever the file on disk holds now. The caller must not modify them.
func (file *File) Source() []byte { return file.src }

// Load parses and checks a test file and runs its top level, which declares
// the machines. Every error carries file:line:col.
func Load(filename string, src []byte) (*File, error) {
	return LoadContext(context.Background(), filename, src)
}

// LoadContext is Load with the top level's run bounded by ctx: when ctx
// ends (a deadline, Ctrl-C) the file's code stops with ctx's cause, so an
// endless loop at the top level cannot hang the driver.
func LoadContext(ctx context.Context, filename string, src []byte) (*File, error) {
	f, prog, err := starlark.SourceProgramOptions(fileOptions, filename, src, isPredeclared)
	if err != nil {
		return nil, pythonHints(err, src)
	}
	decl := &declarations{}
	thread := &starlark.Thread{Name: "load " + filename}
	thread.SetLocal(declKey, decl)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	defer stop()
	file := &File{Name: filename, src: src, machines: make(map[string]*machineValue)}
	globals, err := prog.Init(thread, predeclared(file))
	if err != nil {
		// The machines declared before the error have their problems too.
		return nil, errors.Join(append(partialErrors(decl, globals, f), loadError(err))...)
	}
	// Tests run on their own machines, several at once with -j: what the
	// top level made is shared by all of them, so it is read-only, as
	// Starlark's own modules are after they load.
	globals.Freeze()
	file.globals = globals
	// The declarations' problems and the calls' are reported together.
	if err := errors.Join(file.collect(decl, f), file.checkAttrs(f)); err != nil {
		return nil, err
	}
	return file, nil
}

// loadError turns Starlark's errors into ones that start with file:line:col.
func loadError(err error) error {
	var evalErr *starlark.EvalError
	if errors.As(err, &evalErr) {
		return fmt.Errorf("%s\n%s", evalErr.Msg, backtrace(evalErr))
	}
	return err
}

// collect names the declared machines, checks them (each problem at the
// keyword argument it is about, or at the machine() call) and finds the
// tests.
func (file *File) collect(decl *declarations, f *syntax.File) error {
	var errs []error
	for _, name := range sortedNames(file.globals) {
		if m, ok := file.globals[name].(*machineValue); ok && m.name == "" {
			m.name = name
		}
	}
	var named []*machineValue
	for _, m := range decl.machines {
		if m.name == "" {
			errs = append(errs, fmt.Errorf("%s: machine() is not assigned to a variable and has no name=: its name is the variable's", m.pos))
			continue
		}
		m.spec.Name = m.name
		file.Specs = append(file.Specs, m.spec)
		named = append(named, m)
	}
	for name, v := range file.globals {
		if m, ok := v.(*machineValue); ok {
			file.machines[name] = m
		}
	}
	// Before the declarations' checks: an implied display is checked as
	// a declared one (a kernel without the display's driver).
	file.implyDisplays(f)
	errs = append(errs, declarationErrors(named, f)...)
	for _, name := range file.globalOrder() {
		if fn, ok := file.globals[name].(*starlark.Function); ok && (name == "test" || strings.HasPrefix(name, "test_")) {
			if fn.NumParams() > 0 {
				errs = append(errs, fmt.Errorf("%s: %s takes parameters; a test function takes none", fn.Position(), name))
			}
			file.Tests = append(file.Tests, name)
		}
	}
	if len(file.Tests) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: no test function: define test() or test_something()", file.Name))
	}
	return errors.Join(errs...)
}

// globalOrder returns the globals' names in the order their functions appear
// in the file, so tests run in file order.
func (file *File) globalOrder() []string {
	names := sortedNames(file.globals)
	pos := func(n string) (int32, int32) {
		if fn, ok := file.globals[n].(*starlark.Function); ok {
			p := fn.Position()
			return p.Line, p.Col
		}
		return 0, 0
	}
	sort.SliceStable(names, func(i, j int) bool {
		li, ci := pos(names[i])
		lj, cj := pos(names[j])
		return li < lj || li == lj && ci < cj
	})
	return names
}

func sortedNames(d starlark.StringDict) []string {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkAttrs finds misspelled machine methods and literal arguments of the
// wrong type before anything runs: server.suceed("...") is an error at its
// line, with a suggestion; so is server.wait_for_open_port("80"), and
// server.wait_for_unit("wbe") when server declares no service "wbe".
func (file *File) checkAttrs(f *syntax.File) error {
	var errs []error
	strs := fileStrings(f)
	syntax.Walk(f, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok {
			switch fn := call.Fn.(type) {
			case *syntax.DotExpr:
				if m := file.machineNamed(fn.X); m != nil {
					errs = append(errs, file.checkCall(m, fn, call, strs)...)
				} else if f := moduleFunction(fn); f != nil {
					errs = append(errs, f.check(call, fn.Name.NamePos, filepath.Dir(file.Name))...)
				}
			case *syntax.Ident:
				errs = append(errs, file.checkFunctionCall(fn, call)...)
			}
			return true
		}
		dot, ok := n.(*syntax.DotExpr)
		if !ok {
			return true
		}
		m := file.machineNamed(dot.X)
		if m == nil {
			errs = append(errs, file.checkAlias(dot)...)
			errs = append(errs, checkModuleAttr(dot)...)
			return true
		}
		if !slices.Contains(methodNames, dot.Name.Name) {
			pos := dot.Name.NamePos
			errs = append(errs, fmt.Errorf("%s: machine %s has no method %q%s", pos, m.name, dot.Name.Name, near.Hint(dot.Name.Name, methodNames)))
		}
		return true
	})
	return errors.Join(errs...)
}

// checkAlias refuses machine.x in a file that does not declare exactly one
// machine: only then does `machine` stand for one.
func (file *File) checkAlias(dot *syntax.DotExpr) []error {
	id, ok := dot.X.(*syntax.Ident)
	if !ok || id.Name != "machine" || len(file.Specs) == 1 {
		return nil
	}
	if b, ok := id.Binding.(*resolve.Binding); !ok || b.Scope != resolve.Predeclared {
		return nil
	}
	return []error{fmt.Errorf("%s: machine.%s: `machine` stands for the machine only in a file that declares exactly one; this one declares %d",
		id.NamePos, dot.Name.Name, len(file.Specs))}
}

// checkModuleAttr refuses re.x, time.x and json.x when the module has no
// x, before anything runs: re.serach is an error at its line, with a
// suggestion.
func checkModuleAttr(dot *syntax.DotExpr) []error {
	id, ok := dot.X.(*syntax.Ident)
	if !ok || modules[id.Name] == nil {
		return nil
	}
	if b, ok := id.Binding.(*resolve.Binding); !ok || b.Scope != resolve.Predeclared {
		return nil // the file's own variable of that name
	}
	members := modules[id.Name].(*starlarkstruct.Module).Members
	if members[dot.Name.Name] != nil {
		return nil
	}
	return []error{fmt.Errorf("%s: module %s has no %q%s", dot.Name.NamePos, id.Name, dot.Name.Name, near.Hint(dot.Name.Name, sortedNames(members)))}
}

// moduleFunction is the table function a module member call names
// (time.sleep), or nil.
func moduleFunction(dot *syntax.DotExpr) *function {
	id, ok := dot.X.(*syntax.Ident)
	if !ok || modules[id.Name] == nil {
		return nil
	}
	if b, ok := id.Binding.(*resolve.Binding); !ok || b.Scope != resolve.Predeclared {
		return nil
	}
	return moduleFunctions[id.Name+"."+dot.Name.Name]
}

// checkCall checks a machine method call before anything runs: its
// arguments against the method's signature, with the literals unpacked as
// the call would unpack them, and the units and users it names against
// the machine (checkUnitCall); strs are the file's strings (fileStrings).
func (file *File) checkCall(m *machineValue, dot *syntax.DotExpr, call *syntax.CallExpr, strs []string) []error {
	meth, ok := methodByName[dot.Name.Name]
	if !ok {
		return nil // a misspelled method: reported with the other attributes
	}
	errs := meth.check(call, dot.Name.NamePos, filepath.Dir(file.Name))
	errs = append(errs, checkDisplayCall(m, meth, dot)...)
	errs = append(errs, checkOCRCall(meth, dot)...)
	return append(errs, checkUnitCall(m, meth, dot, call, checkHost(), strs)...)
}

// checkFunctionCall checks a call of a top-level function (link_fault,
// retry, ...) as checkCall checks a method call; fn may also name one of
// the file's own functions, which are not checked here.
func (file *File) checkFunctionCall(id *syntax.Ident, call *syntax.CallExpr) []error {
	b, ok := id.Binding.(*resolve.Binding)
	f := functionByName[id.Name]
	if !ok || b.Scope != resolve.Predeclared || f == nil {
		return nil
	}
	return f.check(call, id.NamePos, filepath.Dir(file.Name))
}

// machineNamed returns the machine an expression names: a global holding
// one, or `machine` in a file that declares exactly one. Nil otherwise,
// also for a function's parameter or local variable of the same name.
func (file *File) machineNamed(e syntax.Expr) *machineValue {
	id, ok := e.(*syntax.Ident)
	if !ok {
		return nil
	}
	if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope != resolve.Global && b.Scope != resolve.Predeclared {
		return nil
	}
	if m := file.machines[id.Name]; m != nil {
		return m
	}
	if id.Name == "machine" && len(file.Specs) == 1 {
		if ms := file.ordered(); len(ms) == 1 {
			return ms[0]
		}
	}
	return nil
}

// checkUnit refuses, on a fast-mode machine, wait_for_unit("name") with a
// literal name the machine does not declare as a service ("name" or "name.service"), unless it is
// a system target such as "default.target": in fast mode there is nothing
// else it could wait for.
func checkUnit(m *machineValue, method string, call *syntax.CallExpr) []error {
	if method != "wait_for_unit" {
		return nil
	}
	lit, ok := callArg(call, 0, "unit").(*syntax.Literal)
	if !ok || lit.Token != syntax.STRING {
		return nil
	}
	name := lit.Value.(string)
	if machine.SystemTarget(name) {
		return nil
	}
	var names []string
	for _, s := range m.spec.Services {
		if s.Name == machine.UnitService(name) {
			return nil
		}
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return []error{fmt.Errorf("%s: machine %s declares no services, so wait_for_unit(%q) has nothing to wait for: declare it with machine(services = {%q: service(...)})", lit.TokenPos, m.name, name, name)}
	}
	hint := near.Hint(name, names)
	if hint == "" {
		hint = " (it declares " + strings.Join(names, ", ") + ")"
	}
	return []error{fmt.Errorf("%s: machine %s declares no service %q%s", lit.TokenPos, m.name, name, hint)}
}

// Select returns the tests whose names match the regular expression (all
// when pattern is empty): the function's name ("test_nat") or the test's
// name in reports ("nat.test_nat"), so that -run can pick files too.
func (file *File) Select(pattern string) ([]string, error) {
	if pattern == "" {
		return file.Tests, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("-run %q: %w", pattern, err)
	}
	var out []string
	for _, t := range file.Tests {
		if re.MatchString(t) || re.MatchString(file.TestID(t)) {
			out = append(out, t)
		}
	}
	return out, nil
}
