package script

import (
	"fmt"
	"os"
	"path/filepath"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/agentproto"
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
	name     string
	pos      syntax.Position
	memory   int
	cpus     int
	vlans    []int // nil: the default, VLAN 1
	user     bool
	shares   []machine.Share
	setup    machine.Setup
	packages []string
	qemuArgs []string
	services []agentproto.Service
	disks    []int
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

func (m *machineValue) spec(name string) lab.Spec {
	return lab.Spec{Name: name, VLANs: m.vlans, UserNet: m.user,
		Machine: machine.Config{MemoryMiB: m.memory, CPUs: m.cpus, Shares: m.shares,
			Setup: m.setup, Packages: m.packages, ExtraArgs: m.qemuArgs, Services: m.services, Disks: m.disks}}
}

// machineBuiltin is machine(name=, memory=, cpus=, vlans=, user_net=,
// shares=, users=, groups=, files=, modules=, sysctls=, packages=,
// qemu_args=): it declares a machine. Only the top level may call it.
func machineBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	decl, ok := thread.Local(declKey).(*declarations)
	if !ok {
		return nil, fmt.Errorf("machine(): declare machines at the top level of the file, not inside a test")
	}
	m := &machineValue{pos: thread.CallFrame(1).Pos}
	var vlans *starlark.List
	var shares, files, sysctls, svcs *starlark.Dict
	var users starlark.Value
	var groups, modules, packages, qemuArgs, disks *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name?", &m.name, "memory?", &m.memory, "cpus?", &m.cpus, "vlans?", &vlans,
		"user_net?", &m.user, "shares?", &shares, "users?", &users, "groups?", &groups,
		"files?", &files, "modules?", &modules, "sysctls?", &sysctls, "packages?", &packages,
		"qemu_args?", &qemuArgs, "services?", &svcs, "disks?", &disks); err != nil {
		return nil, err
	}
	var err error
	if m.setup.Groups, err = stringList("groups", groups); err != nil {
		return nil, err
	}
	if m.setup.Modules, err = stringList("modules", modules); err != nil {
		return nil, err
	}
	if m.packages, err = stringList("packages", packages); err != nil {
		return nil, err
	}
	if err := machine.CheckPackages(m.packages); err != nil {
		return nil, fmt.Errorf("machine(): %w", err)
	}
	if m.qemuArgs, err = stringList("qemu_args", qemuArgs); err != nil {
		return nil, err
	}
	if m.setup.Users, err = accounts(users); err != nil {
		return nil, err
	}
	if m.setup.Sysctls, err = stringDict("sysctls", sysctls); err != nil {
		return nil, err
	}
	if m.setup.Files, err = fileList(files); err != nil {
		return nil, err
	}
	if disks != nil {
		for i := range disks.Len() {
			size, err := starlark.AsInt32(disks.Index(i))
			if err != nil || size <= 0 {
				return nil, fmt.Errorf("machine(): disks[%d]: want a size in MiB, got %s", i, disks.Index(i))
			}
			m.disks = append(m.disks, size)
		}
	}
	if svcs != nil {
		for _, kv := range svcs.Items() {
			name, ok := starlark.AsString(kv[0])
			sv, ok2 := kv[1].(*serviceValue)
			if !ok || !ok2 {
				return nil, fmt.Errorf("machine(): services: want {name: service(...)}, got %s: %s", kv[0], kv[1].Type())
			}
			spec := sv.spec
			spec.Name = name
			if err := machine.CheckService(spec); err != nil {
				return nil, fmt.Errorf("machine(): %w", err)
			}
			m.services = append(m.services, spec)
		}
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

func stringList(what string, l *starlark.List) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	var out []string
	for i := range l.Len() {
		s, ok := starlark.AsString(l.Index(i))
		if !ok {
			return nil, fmt.Errorf("machine(): %s[%d]: got %s, want a string", what, i, l.Index(i).Type())
		}
		out = append(out, s)
	}
	return out, nil
}

func stringDict(what string, d *starlark.Dict) (map[string]string, error) {
	if d == nil {
		return nil, nil
	}
	out := make(map[string]string)
	for _, kv := range d.Items() {
		k, ok1 := starlark.AsString(kv[0])
		v, ok2 := starlark.AsString(kv[1])
		if !ok2 {
			if i, err := starlark.AsInt32(kv[1]); err == nil {
				v, ok2 = fmt.Sprint(i), true
			}
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("machine(): %s: want string keys and string or int values, got %s: %s", what, kv[0], kv[1])
		}
		out[k] = v
	}
	return out, nil
}

// accounts takes users = ["alice"] or users = {"alice": {"groups": [...],
// "shell": "/bin/bash"}}.
func accounts(v starlark.Value) ([]machine.Account, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case *starlark.List:
		names, err := stringList("users", v)
		var out []machine.Account
		for _, n := range names {
			out = append(out, machine.Account{Name: n})
		}
		return out, err
	case *starlark.Dict:
		var out []machine.Account
		for _, kv := range v.Items() {
			name, ok := starlark.AsString(kv[0])
			opts, ok2 := kv[1].(*starlark.Dict)
			if !ok || !ok2 {
				return nil, fmt.Errorf("machine(): users: want {name: {\"groups\": [...], \"shell\": ...}}, got %s: %s", kv[0], kv[1])
			}
			a := machine.Account{Name: name}
			for _, o := range opts.Items() {
				key, _ := starlark.AsString(o[0])
				switch key {
				case "groups":
					l, _ := o[1].(*starlark.List)
					gs, err := stringList("users."+name+".groups", l)
					if err != nil || l == nil {
						return nil, fmt.Errorf("machine(): users.%s.groups: want a list of strings", name)
					}
					a.Groups = gs
				case "shell":
					sh, ok := starlark.AsString(o[1])
					if !ok {
						return nil, fmt.Errorf("machine(): users.%s.shell: want a string", name)
					}
					a.Shell = sh
				default:
					return nil, fmt.Errorf("machine(): users.%s: unknown option %s (want groups, shell)", name, o[0])
				}
			}
			out = append(out, a)
		}
		return out, nil
	}
	return nil, fmt.Errorf("machine(): users: got %s, want a list of names or a dict", v.Type())
}

// fileList takes files = {"/etc/x": "content"} or {"/usr/local/bin/x":
// {"content": "...", "mode": 0o755}}.
func fileList(d *starlark.Dict) ([]machine.File, error) {
	if d == nil {
		return nil, nil
	}
	var out []machine.File
	for _, kv := range d.Items() {
		path, ok := starlark.AsString(kv[0])
		if !ok || !filepath.IsAbs(path) {
			return nil, fmt.Errorf("machine(): files: keys are absolute guest paths, got %s", kv[0])
		}
		f := machine.File{Path: path}
		switch v := kv[1].(type) {
		case starlark.String:
			f.Content = string(v)
		case *starlark.Dict:
			for _, o := range v.Items() {
				key, _ := starlark.AsString(o[0])
				switch key {
				case "content":
					c, ok := starlark.AsString(o[1])
					if !ok {
						return nil, fmt.Errorf("machine(): files[%q].content: want a string", path)
					}
					f.Content = c
				case "mode":
					mode, err := starlark.AsInt32(o[1])
					if err != nil {
						return nil, fmt.Errorf("machine(): files[%q].mode: want an int such as 0o755", path)
					}
					f.Mode = os.FileMode(mode)
				default:
					return nil, fmt.Errorf("machine(): files[%q]: unknown option %s (want content, mode)", path, o[0])
				}
			}
		default:
			return nil, fmt.Errorf("machine(): files[%q]: got %s, want a string or {\"content\": ..., \"mode\": ...}", path, kv[1].Type())
		}
		out = append(out, f)
	}
	return out, nil
}

// serviceValue is what service(...) returns: a service for machine(services=).
type serviceValue struct{ spec agentproto.Service }

func (s *serviceValue) String() string        { return fmt.Sprintf("service(%q)", s.spec.Command) }
func (s *serviceValue) Type() string          { return "service" }
func (s *serviceValue) Freeze()               {}
func (s *serviceValue) Truth() starlark.Bool  { return true }
func (s *serviceValue) Hash() (uint32, error) { return starlark.String(s.spec.Command).Hash() }

// serviceBuiltin is service(command, user=, dir=, env=, wait_for_port=,
// wait_for_file=, wait_for_log=, restart="no").
func serviceBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s agentproto.Service
	var env *starlark.Dict
	s.Restart = "no"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &s.Command, "user?", &s.User, "dir?", &s.Dir,
		"env?", &env, "wait_for_port?", &s.ReadyPort, "wait_for_file?", &s.ReadyFile, "wait_for_log?", &s.ReadyLog,
		"restart?", &s.Restart); err != nil {
		return nil, err
	}
	vars, err := stringDict("env", env)
	if err != nil {
		return nil, err
	}
	for k, v := range vars {
		s.Env = append(s.Env, k+"="+v)
	}
	return &serviceValue{spec: s}, nil
}
