package script

import (
	"fmt"
	"path/filepath"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
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
	name   string
	pos    syntax.Position
	memory int
	cpus   int
	vlans  []int // nil: the default, VLAN 1
	user   bool
	shares []machine.Share
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
	return starlark.NewBuiltin(name, fn).BindReceiver(m), nil
}

func (m *machineValue) AttrNames() []string { return methodNames }

func (m *machineValue) spec(name string) lab.Spec {
	return lab.Spec{Name: name, VLANs: m.vlans, UserNet: m.user,
		Machine: machine.Config{MemoryMiB: m.memory, CPUs: m.cpus, Shares: m.shares}}
}

// machineBuiltin is machine(name=, memory=, cpus=, vlans=, user_net=,
// shares=): it declares a machine. Only the top level may call it.
func machineBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	decl, ok := thread.Local(declKey).(*declarations)
	if !ok {
		return nil, fmt.Errorf("machine(): declare machines at the top level of the file, not inside a test")
	}
	m := &machineValue{pos: thread.CallFrame(1).Pos}
	var vlans *starlark.List
	var shares *starlark.Dict
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name?", &m.name, "memory?", &m.memory, "cpus?", &m.cpus, "vlans?", &vlans,
		"user_net?", &m.user, "shares?", &shares); err != nil {
		return nil, err
	}
	if m.memory < 0 || m.cpus < 0 {
		return nil, fmt.Errorf("machine(): memory and cpus must be positive")
	}
	if vlans != nil {
		m.vlans = []int{}
		for i := range vlans.Len() {
			v, err := starlark.AsInt32(vlans.Index(i))
			if err != nil {
				return nil, fmt.Errorf("machine(): vlans[%d]: want an int, got %s", i, vlans.Index(i).Type())
			}
			m.vlans = append(m.vlans, v)
		}
	}
	if shares != nil {
		for _, item := range shares.Items() {
			host, ok1 := starlark.AsString(item[0])
			guest, ok2 := starlark.AsString(item[1])
			if !ok1 || !ok2 || !filepath.IsAbs(guest) {
				return nil, fmt.Errorf("machine(): shares maps host directories to absolute guest paths, got %s: %s", item[0], item[1])
			}
			if !filepath.IsAbs(host) {
				host = filepath.Join(filepath.Dir(m.pos.Filename()), host)
			}
			m.shares = append(m.shares, machine.Share{HostPath: host, GuestPath: guest})
		}
	}
	decl.machines = append(decl.machines, m)
	return m, nil
}
