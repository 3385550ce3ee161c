package script

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.starlark.net/starlark"
)

type builtinFunc = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// builtins are the declarations, callable only at the top level; the
// functions a test calls are in functionTable.
var builtins = map[string]builtinFunc{
	"machine": machineBuiltin,
	"service": serviceBuiltin,
}

// functionByName indexes functionTable.
var functionByName = func() map[string]*function {
	byName := make(map[string]*function, len(functionTable))
	for _, fn := range functionTable {
		byName[fn.name] = fn
	}
	return byName
}()

// predeclared returns the file's builtins. machine is special: called, it
// declares a machine; in a file with exactly one machine it also stands for
// that machine (machine.succeed(...)), as in NixOS.
func predeclared(file *File) starlark.StringDict {
	d := make(starlark.StringDict, len(builtins)+len(functionTable)+1)
	for name, fn := range builtins {
		d[name] = starlark.NewBuiltin(name, fn)
	}
	for _, fn := range functionTable {
		d[fn.name] = starlark.NewBuiltin(fn.name, fn.builtin)
	}
	d["machine"] = &declarer{Builtin: starlark.NewBuiltin("machine", machineBuiltin), file: file}
	d["machines"] = machinesView{file}
	d["vlans"] = vlansView{file}
	maps.Copy(d, modules)
	return d
}

// declarer is the predeclared machine.
type declarer struct {
	*starlark.Builtin
	file *File
}

func (d *declarer) Attr(name string) (starlark.Value, error) {
	if len(d.file.Specs) != 1 {
		return nil, fmt.Errorf("machine.%s: `machine` stands for the machine only in a file that declares exactly one; this one declares %d", name, len(d.file.Specs))
	}
	for _, m := range d.file.machines {
		return m.Attr(name)
	}
	return nil, nil
}

func (d *declarer) AttrNames() []string { return methodNames }

func isPredeclared(name string) bool {
	_, ok := builtins[name]
	return ok || functionByName[name] != nil || modules[name] != nil || name == "machines" || name == "vlans"
}

// ordered returns the file's machines in declaration order.
func (file *File) ordered() []*machineValue {
	var ms []*machineValue
	for _, s := range file.Specs {
		for _, m := range file.machines {
			if m.name == s.Name {
				ms = append(ms, m)
				break
			}
		}
	}
	return ms
}

// each runs do for every machine at once and returns the first error.
func (r *run) each(do func(*machineValue) error) error {
	ms := r.file.ordered()
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			defer recoverInto(&errs[i])
			errs[i] = do(m)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// machinesView is `machines`: the declared machines in declaration order,
// as NixOS's list of the same name. It is empty at the top level of the
// file, where the machines are still being declared.
type machinesView struct{ file *File }

var (
	_ starlark.Indexable = machinesView{}
	_ starlark.Sequence  = machinesView{}
)

func (v machinesView) String() string {
	var names []string
	for _, m := range v.file.ordered() {
		names = append(names, m.name)
	}
	return "machines[" + strings.Join(names, ", ") + "]"
}
func (v machinesView) Type() string          { return "machines" }
func (v machinesView) Freeze()               {}
func (v machinesView) Truth() starlark.Bool  { return len(v.file.Specs) > 0 }
func (v machinesView) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: machines") }
func (v machinesView) Len() int              { return len(v.file.ordered()) }
func (v machinesView) Index(i int) starlark.Value {
	return v.file.ordered()[i]
}
func (v machinesView) Iterate() starlark.Iterator {
	return starlark.NewList(v.list()).Iterate()
}

func (v machinesView) list() []starlark.Value {
	var l []starlark.Value
	for _, m := range v.file.ordered() {
		l = append(l, m)
	}
	return l
}

// vlansView is `vlans`: the VLANs the declared machines are on, sorted,
// each once (NixOS's list of the same name holds VLAN objects; here their
// numbers). Empty at the top level, like machines.
type vlansView struct{ file *File }

var _ starlark.Sequence = vlansView{}

func (v vlansView) list() []starlark.Value {
	var nrs []int
	for _, m := range v.file.ordered() {
		nrs = append(nrs, m.spec.NetVLANs()...)
	}
	slices.Sort(nrs)
	var l []starlark.Value
	for _, n := range slices.Compact(nrs) {
		l = append(l, starlark.MakeInt(n))
	}
	return l
}

func (v vlansView) String() string             { return starlark.NewList(v.list()).String() }
func (v vlansView) Type() string               { return "vlans" }
func (v vlansView) Freeze()                    {}
func (v vlansView) Truth() starlark.Bool       { return v.Len() > 0 }
func (v vlansView) Hash() (uint32, error)      { return 0, fmt.Errorf("unhashable: vlans") }
func (v vlansView) Len() int                   { return len(v.list()) }
func (v vlansView) Index(i int) starlark.Value { return v.list()[i] }
func (v vlansView) Iterate() starlark.Iterator { return starlark.NewList(v.list()).Iterate() }
