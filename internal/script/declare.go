package script

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/near"
	"github.com/vmlab/vmlab/internal/spec"
)

// machineArg is one of machine()'s arguments: its keyword (the field's in
// spec.Machine) and how its value goes into the declaration.
type machineArg struct {
	name string
	set  func(m *machineValue, v starlark.Value) error
}

// machineArgs are machine()'s arguments, in the order a positional call
// fills them. Every spec.Machine field is one of them (TestSpecFields).
var machineArgs = []machineArg{
	{"name", func(m *machineValue, v starlark.Value) error { return setString(&m.name, v) }},
	{"memory", into(intValue("an int (MiB)"), func(s *spec.Machine) *int { return &s.MemoryMiB })},
	{"cpus", into(intValue("an int"), func(s *spec.Machine) *int { return &s.CPUs })},
	{"vlans", into(vlanList, func(s *spec.Machine) *[]int { return &s.VLANs })},
	{"user_net", into(boolValue, func(s *spec.Machine) *bool { return &s.UserNet })},
	{"shares", setShares},
	{"users", into(accounts, func(s *spec.Machine) *[]spec.Account { return &s.Setup.Users })},
	{"groups", into(stringList, func(s *spec.Machine) *[]string { return &s.Setup.Groups })},
	{"files", into(fileList, func(s *spec.Machine) *[]spec.File { return &s.Setup.Files })},
	{"modules", into(stringList, func(s *spec.Machine) *[]string { return &s.Setup.Modules })},
	{"sysctls", into(stringDict, func(s *spec.Machine) *map[string]string { return &s.Setup.Sysctls })},
	{"packages", into(stringList, func(s *spec.Machine) *[]string { return &s.Packages })},
	{"qemu_args", into(stringList, func(s *spec.Machine) *[]string { return &s.QEMUArgs })},
	{"services", setServices},
	{"disks", into(intList, func(s *spec.Machine) *[]int { return &s.Disks })},
	{"disk_size", into(intValue("an int (MiB)"), func(s *spec.Machine) *int { return &s.DiskMiB })},
	{"forward_ports", into(forwardPorts, func(s *spec.Machine) *[]spec.Forward { return &s.ForwardPorts })},
	{"init", into(stringValue, func(s *spec.Machine) *string { return &s.Init })},
	{"units", into(unitFiles, func(s *spec.Machine) *[]spec.UnitFile { return &s.Units })},
	{"enable", into(stringList, func(s *spec.Machine) *[]string { return &s.Enable })},
	{"display", into(boolValue, func(s *spec.Machine) *bool { return &s.Display })},
	{"image", setImage},
}

// into makes an argument that parses its value and stores it in the field
// of the declaration that at returns.
func into[T any](parse func(starlark.Value) (T, error), at func(*spec.Machine) *T) func(*machineValue, starlark.Value) error {
	return func(m *machineValue, v starlark.Value) error {
		x, err := parse(v)
		if err == nil {
			*at(&m.spec) = x
		}
		return err
	}
}

func intValue(want string) func(starlark.Value) (int, error) {
	return func(v starlark.Value) (n int, err error) { return n, setInt(&n, want, v) }
}

func stringValue(v starlark.Value) (s string, err error) { return s, setString(&s, v) }

func boolValue(v starlark.Value) (bool, error) {
	b, ok := v.(starlark.Bool)
	if !ok {
		return false, wantType("True or False", v)
	}
	return bool(b), nil
}

// vlanList is intList, but an empty list stays non-nil: no network at all.
func vlanList(v starlark.Value) ([]int, error) {
	l, err := intList(v)
	if err == nil && l == nil {
		l = []int{}
	}
	return l, err
}

func machineArgNames() []string {
	names := make([]string, len(machineArgs))
	for i, a := range machineArgs {
		names[i] = a.name
	}
	return names
}

// machineBuiltin is machine(name=, memory=, cpus=, vlans=, user_net=,
// shares=, users=, groups=, files=, modules=, sysctls=, packages=,
// qemu_args=, services=, disks=, disk_size=, forward_ports=, init=,
// units=, enable=): it declares a machine. Only the top level may call it. A bad argument does not stop the file's loading: it is a
// problem of the declaration, reported by Load with every other one.
func machineBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	decl, ok := thread.Local(declKey).(*declarations)
	if !ok {
		return nil, fmt.Errorf("machine(): declare machines at the top level of the file, not inside a test")
	}
	m := &machineValue{pos: thread.CallFrame(1).Pos, spec: spec.New("")}
	for i, v := range args {
		if i >= len(machineArgs) {
			m.problem("", "machine() takes at most %d arguments, got %d", len(machineArgs), len(args))
			break
		}
		m.setArg(machineArgs[i].name, v)
	}
	for _, kv := range kwargs {
		m.setArg(string(kv[0].(starlark.String)), kv[1])
	}
	decl.machines = append(decl.machines, m)
	return m, nil
}

// setArg sets one argument, or records why it cannot.
func (m *machineValue) setArg(name string, v starlark.Value) {
	i := slices.IndexFunc(machineArgs, func(a machineArg) bool { return a.name == name })
	if i < 0 {
		m.problem(name, "machine() has no argument %q%s", name, near.Hint(name, machineArgNames()))
		return
	}
	if err := machineArgs[i].set(m, v); err != nil {
		m.problem(name, "%s: %v", name, err)
	}
	m.displaySaid = m.displaySaid || name == "display"
}

func (m *machineValue) problem(field, format string, args ...any) {
	m.problems = append(m.problems, spec.Problem{Field: field, Err: fmt.Errorf(format, args...)})
}

func wantType(want string, v starlark.Value) error {
	return fmt.Errorf("got %s, want %s", v.Type(), want)
}

func setString(dst *string, v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok {
		return wantType("a string", v)
	}
	*dst = s
	return nil
}

func setInt(dst *int, want string, v starlark.Value) error {
	if _, ok := v.(starlark.Int); !ok {
		return wantType(want, v)
	}
	i, err := starlark.AsInt32(v)
	if err != nil {
		return fmt.Errorf("%s is out of range", v)
	}
	*dst = i
	return nil
}

func list(v starlark.Value) (*starlark.List, error) {
	switch l := v.(type) {
	case *starlark.List:
		return l, nil
	case starlark.Tuple:
		return starlark.NewList(l), nil
	}
	return nil, wantType("a list", v)
}

func intList(v starlark.Value) ([]int, error) {
	l, err := list(v)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range l.Len() {
		var n int
		if err := setInt(&n, "an int", l.Index(i)); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func stringList(v starlark.Value) ([]string, error) {
	l, err := list(v)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range l.Len() {
		s, ok := starlark.AsString(l.Index(i))
		if !ok {
			return nil, fmt.Errorf("[%d]: %w", i, wantType("a string", l.Index(i)))
		}
		out = append(out, s)
	}
	return out, nil
}

func dict(v starlark.Value, want string) (*starlark.Dict, error) {
	d, ok := v.(*starlark.Dict)
	if !ok {
		return nil, wantType(want, v)
	}
	return d, nil
}

// stringDict takes string keys and string or int values.
func stringDict(v starlark.Value) (map[string]string, error) {
	d, err := dict(v, "a dict")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for _, kv := range d.Items() {
		k, ok1 := starlark.AsString(kv[0])
		val, ok2 := starlark.AsString(kv[1])
		if !ok2 {
			if i, err := starlark.AsInt32(kv[1]); err == nil {
				val, ok2 = fmt.Sprint(i), true
			}
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("want string keys and string or int values, got %s: %s", kv[0], kv[1])
		}
		out[k] = val
	}
	return out, nil
}

// forwardPorts takes {host port: guest port}, or a list of (host port,
// guest port) pairs, which may pick several free ports: [(0, 80), (0, 443)].
func forwardPorts(v starlark.Value) ([]spec.Forward, error) {
	const want = "{host port: guest port} or [(host port, guest port), ...]"
	var pairs []starlark.Tuple
	switch v := v.(type) {
	case *starlark.Dict:
		pairs = v.Items()
	case *starlark.List, starlark.Tuple:
		l, _ := list(v)
		for i := range l.Len() {
			p, ok := l.Index(i).(starlark.Tuple)
			if !ok || len(p) != 2 {
				return nil, fmt.Errorf("[%d]: got %s, want a (host port, guest port) pair", i, l.Index(i))
			}
			pairs = append(pairs, p)
		}
	default:
		return nil, wantType(want, v)
	}
	var out []spec.Forward
	for _, p := range pairs {
		var f spec.Forward
		if setInt(&f.HostPort, "an int", p[0]) != nil || setInt(&f.GuestPort, "an int", p[1]) != nil {
			return nil, fmt.Errorf("%s: %s: want ports as ints, %s", p[0], p[1], want)
		}
		out = append(out, f)
	}
	return out, nil
}

// setShares takes {host directory: guest path}; a relative host directory
// is relative to the test file's, and made absolute.
func setShares(m *machineValue, v starlark.Value) error {
	d, err := dict(v, "a dict {host directory: guest path}")
	if err != nil {
		return err
	}
	for _, item := range d.Items() {
		host, ok1 := starlark.AsString(item[0])
		guest, ok2 := starlark.AsString(item[1])
		if !ok1 || !ok2 {
			return fmt.Errorf("want {host directory: guest path} of strings, got %s: %s", item[0], item[1])
		}
		// Relative to the file, and absolute whatever path named the file
		// (QEMU and virtiofsd want one).
		if !filepath.IsAbs(host) {
			abs, err := filepath.Abs(filepath.Join(filepath.Dir(m.pos.Filename()), host))
			if err != nil {
				return fmt.Errorf("share %s: %w", host, err)
			}
			host = abs
		}
		m.spec.Shares = append(m.spec.Shares, spec.Share{HostPath: host, GuestPath: guest})
	}
	return nil
}

// setImage takes an image reference; the path of "oci:DIR[:TAG]" and
// "docker-archive:FILE" is relative to the test file's directory, as a
// share's is, and made absolute (the Go API's is relative to the working
// directory).
func setImage(m *machineValue, v starlark.Value) error {
	ref, err := stringValue(v)
	if err != nil {
		return err
	}
	for _, kind := range []string{"oci:", "docker-archive:"} {
		p, ok := strings.CutPrefix(ref, kind)
		if !ok || p == "" || filepath.IsAbs(p) {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(filepath.Dir(m.pos.Filename()), p))
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		ref = kind + abs
	}
	m.spec.Image = ref
	return nil
}

// setServices takes {name: service(...)}.
func setServices(m *machineValue, v starlark.Value) error {
	d, err := dict(v, "a dict {name: service(...)}")
	if err != nil {
		return err
	}
	for _, kv := range d.Items() {
		name, ok := starlark.AsString(kv[0])
		sv, ok2 := kv[1].(*serviceValue)
		if !ok || !ok2 {
			return fmt.Errorf("want {name: service(...)}, got %s: %s", kv[0], kv[1].Type())
		}
		s := sv.spec
		s.Name = name
		m.spec.Services = append(m.spec.Services, s)
	}
	return nil
}

// unitFiles takes units = {"web.service": """[Unit] ..."""}: unit files
// by name, in the dict's order. A service(...) there is refused: services
// = {...} takes it, and a systemd machine runs it as a unit already.
func unitFiles(v starlark.Value) ([]spec.UnitFile, error) {
	d, err := dict(v, `a dict {"NAME.service": """[Unit] ..."""}`)
	if err != nil {
		return nil, err
	}
	var out []spec.UnitFile
	for _, kv := range d.Items() {
		name, ok := starlark.AsString(kv[0])
		if !ok {
			return nil, fmt.Errorf("keys are unit names such as \"web.service\", got %s", kv[0].Type())
		}
		if _, ok := kv[1].(*serviceValue); ok {
			stem := strings.TrimSuffix(name, ".service")
			return nil, fmt.Errorf("%q: a service(...) goes in services = {%q: service(...)}, which a systemd machine runs as the unit %s.service; units takes unit file texts", name, stem, stem)
		}
		text, ok := starlark.AsString(kv[1])
		if !ok {
			return nil, fmt.Errorf("%q: got %s, want the unit file's text (\"[Unit]\\n...\")", name, kv[1].Type())
		}
		out = append(out, spec.UnitFile{Name: name, Text: text})
	}
	return out, nil
}

// accounts takes users = ["alice"] or users = {"alice": {"groups": [...],
// "shell": "/bin/bash"}}.
func accounts(v starlark.Value) ([]spec.Account, error) {
	if _, ok := v.(*starlark.Dict); !ok {
		names, err := stringList(v)
		if err != nil {
			return nil, fmt.Errorf("want a list of names or a dict {name: {\"groups\": [...], \"shell\": ...}}: %w", err)
		}
		var out []spec.Account
		for _, n := range names {
			out = append(out, spec.Account{Name: n})
		}
		return out, nil
	}
	var out []spec.Account
	for _, kv := range v.(*starlark.Dict).Items() {
		name, ok := starlark.AsString(kv[0])
		opts, ok2 := kv[1].(*starlark.Dict)
		if !ok || !ok2 {
			return nil, fmt.Errorf("want {name: {\"groups\": [...], \"shell\": ...}}, got %s: %s", kv[0], kv[1])
		}
		a := spec.Account{Name: name}
		for _, o := range opts.Items() {
			var err error
			switch key, _ := starlark.AsString(o[0]); key {
			case "groups":
				a.Groups, err = stringList(o[1])
			case "shell":
				err = setString(&a.Shell, o[1])
			default:
				err = fmt.Errorf("unknown option %s (want groups, shell)", o[0])
			}
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", name, o[0], err)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// fileList takes files = {"/etc/x": "content"} or {"/usr/local/bin/x":
// {"content": "...", "mode": 0o755}}.
func fileList(v starlark.Value) ([]spec.File, error) {
	d, err := dict(v, "a dict {guest path: content}")
	if err != nil {
		return nil, err
	}
	var out []spec.File
	for _, kv := range d.Items() {
		path, ok := starlark.AsString(kv[0])
		if !ok {
			return nil, fmt.Errorf("keys are guest paths, got %s", kv[0].Type())
		}
		f := spec.File{Path: path}
		switch v := kv[1].(type) {
		case starlark.String:
			f.Content = string(v)
		case *starlark.Dict:
			if err := setFileOptions(&f, v); err != nil {
				return nil, fmt.Errorf("%q: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("%q: got %s, want a string or {\"content\": ..., \"mode\": ...}", path, kv[1].Type())
		}
		out = append(out, f)
	}
	return out, nil
}

func setFileOptions(f *spec.File, d *starlark.Dict) error {
	for _, o := range d.Items() {
		switch key, _ := starlark.AsString(o[0]); key {
		case "content":
			if err := setString(&f.Content, o[1]); err != nil {
				return fmt.Errorf("content: %w", err)
			}
		case "mode":
			var mode int
			if err := setInt(&mode, "an int such as 0o755", o[1]); err != nil {
				return fmt.Errorf("mode: %w", err)
			}
			if mode < 0 {
				return fmt.Errorf("mode %d is not a file mode (want 0 to 0o7777, such as 0o755)", mode)
			}
			f.Mode = os.FileMode(mode)
		default:
			return fmt.Errorf("unknown option %s (want content, mode)", o[0])
		}
	}
	return nil
}

// serviceValue is what service(...) returns: a service for machine(services=).
type serviceValue struct{ spec agentproto.Service }

func (s *serviceValue) String() string        { return fmt.Sprintf("service(%q)", s.spec.Command) }
func (s *serviceValue) Type() string          { return "service" }
func (s *serviceValue) Freeze()               {}
func (s *serviceValue) Truth() starlark.Bool  { return true }
func (s *serviceValue) Hash() (uint32, error) { return starlark.String(s.spec.Command).Hash() }

// serviceBuiltin is service(command, user=, dir=, env=, wait_for_port=,
// wait_for_file=, wait_for_log=, restart="no"). Its values are checked
// with the machine that declares it (spec.CheckService).
func serviceBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s agentproto.Service
	var env *starlark.Dict
	s.Restart = "no"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &s.Command, "user?", &s.User, "dir?", &s.Dir,
		"env?", &env, "wait_for_port?", &s.ReadyPort, "wait_for_file?", &s.ReadyFile, "wait_for_log?", &s.ReadyLog,
		"restart?", &s.Restart); err != nil {
		return nil, err
	}
	if env != nil {
		vars, err := stringDict(env)
		if err != nil {
			return nil, fmt.Errorf("%s: env: %w", b.Name(), err)
		}
		for k, v := range vars {
			s.Env = append(s.Env, k+"="+v)
		}
	}
	return &serviceValue{spec: s}, nil
}
