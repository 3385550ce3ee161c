package script

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"
)

type builtinFunc = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// methods are the machine methods, named as in the NixOS driver.
var methods = map[string]builtinFunc{
	"start":                     simple(func(r *run, m *machineValue) error { return r.boot(m) }),
	"shutdown":                  simple(func(r *run, m *machineValue) error { return r.machine(m).Shutdown(r.ctx) }),
	"reboot":                    simple(func(r *run, m *machineValue) error { return r.machine(m).Reboot(r.ctx) }),
	"crash":                     simple(func(r *run, m *machineValue) error { r.machine(m).Crash(); return nil }),
	"block":                     blockMethod(true),
	"unblock":                   blockMethod(false),
	"succeed":                   succeedMethod(true),
	"fail":                      succeedMethod(false),
	"execute":                   executeMethod,
	"wait_until_succeeds":       waitCommandMethod(true),
	"wait_until_fails":          waitCommandMethod(false),
	"wait_for_file":             waitPathMethod("wait_for_file"),
	"wait_for_open_unix_socket": waitPathMethod("wait_for_open_unix_socket"),
	"wait_for_open_port":        waitPortMethod(true),
	"wait_for_closed_port":      waitPortMethod(false),
	"wait_for_console_text":     waitConsoleMethod,
	"wait_for_shutdown":         waitShutdownMethod,
	"wait_for_unit":             waitUnitMethod,
	"copy_from_host":            copyFromHostMethod,
	"copy_from_vm":              copyFromVMMethod,
	"forward_port":              forwardPortMethod,
	"sleep":                     sleepMethod,
}

// methodNames lists methods and attributes, sorted, for errors and dir().
var methodNames = func() []string {
	names := []string{"name"}
	for n := range methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}()

// noBoot are the methods that do not need the machine up.
var noBoot = []string{"start", "shutdown", "crash", "block", "unblock", "forward_port", "sleep",
	"wait_for_shutdown", "wait_for_console_text"}

// receiver returns the machine a bound method was called on and the run,
// booting the machine first if the method needs it up (machines start
// lazily, as in NixOS; the boot is reported as its own event).
func receiver(thread *starlark.Thread, b *starlark.Builtin) (*run, *machineValue, error) {
	m := b.Receiver().(*machineValue)
	r, err := runOf(thread, m.name+"."+b.Name()+"()")
	if err == nil {
		err = r.checkConditions(thread)
	}
	if err == nil && !slices.Contains(noBoot, b.Name()) {
		err = r.boot(m)
	}
	return r, m, err
}

func simple(do func(*run, *machineValue) error) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		return starlark.None, do(r, m)
	}
}

// succeedMethod is succeed(*commands, timeout=None) and fail(...): run each
// command, fail on the wrong exit status, return the outputs joined.
func succeedMethod(wantSuccess bool) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var timeout duration
		if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "timeout?", &timeout); err != nil {
			return nil, err
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("%s: want at least one command", b.Name())
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		var out strings.Builder
		for i, a := range args {
			cmd, ok := starlark.AsString(a)
			if !ok {
				return nil, fmt.Errorf("%s: command %d: got %s, want a string", b.Name(), i+1, a.Type())
			}
			want := failure
			if wantSuccess {
				want = success
			}
			res, err := r.command(m, cmd, timeout.d, want)
			if err != nil {
				return nil, err
			}
			out.WriteString(res.Stdout)
		}
		return starlark.String(out.String()), nil
	}
}

// executeMethod is execute(command, check_return=True, timeout=None): the
// exit status and output, as a tuple.
func executeMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cmd string
	var timeout duration
	checkReturn := true
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &cmd, "check_return?", &checkReturn, "timeout?", &timeout); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	res, err := r.command(m, cmd, timeout.d, anyStatus)
	if err != nil {
		return nil, err
	}
	status := starlark.Value(starlark.MakeInt(res.Status))
	if !checkReturn {
		status = starlark.None
	}
	return starlark.Tuple{status, starlark.String(res.Stdout)}, nil
}

func waitCommandMethod(success bool) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var cmd string
		var timeout duration
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &cmd, "timeout?", &timeout); err != nil {
			return nil, err
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		mm := r.machine(m)
		var out string
		if success {
			out, err = mm.WaitUntilSucceeds(r.ctx, cmd, timeout.d)
		} else {
			out, err = mm.WaitUntilFails(r.ctx, cmd, timeout.d)
		}
		return starlark.String(out), err
	}
}

func waitPathMethod(name string) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var path string
		var timeout duration
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path, "timeout?", &timeout); err != nil {
			return nil, err
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		if name == "wait_for_file" {
			return starlark.None, r.machine(m).WaitForFile(r.ctx, path, timeout.d)
		}
		return starlark.None, r.machine(m).WaitForOpenUnixSocket(r.ctx, path, timeout.d)
	}
}

func waitPortMethod(open bool) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var port int
		addr := "localhost"
		var timeout duration
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "port", &port, "addr?", &addr, "timeout?", &timeout); err != nil {
			return nil, err
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		if open {
			return starlark.None, r.machine(m).WaitForOpenPort(r.ctx, addr, port, timeout.d)
		}
		return starlark.None, r.machine(m).WaitForClosedPort(r.ctx, addr, port, timeout.d)
	}
}

func waitConsoleMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var regex string
	var timeout duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "regex", &regex, "timeout?", &timeout); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	line, err := r.machine(m).WaitForConsoleText(r.ctx, regex, timeout.d)
	return starlark.String(line), err
}

func waitShutdownMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var timeout duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "timeout?", &timeout); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.None, r.machine(m).WaitForShutdown(r.ctx, timeout.d)
}

// waitUnitMethod is wait_for_unit(name, timeout=None): the declared service
// is ready; it fails at once when the service exited for good.
func waitUnitMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var unit string
	var timeout duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "unit", &unit, "timeout?", &timeout); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.None, r.machine(m).WaitForUnit(r.ctx, unit, timeout.d)
}

func copyFromHostMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var src, dst string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "source", &src, "target", &dst); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(src) {
		src = filepath.Join(filepath.Dir(r.file.Name), src)
	}
	return starlark.None, r.machine(m).CopyFromHost(r.ctx, src, dst)
}

// copyFromVMMethod is copy_from_vm(source, target_dir=""): as in NixOS the
// copy lands in the test's output directory, under target_dir.
func copyFromVMMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var src, dir string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "source", &src, "target_dir?", &dir); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	if filepath.IsAbs(dir) || strings.Contains(dir, "..") {
		return nil, fmt.Errorf("copy_from_vm: target_dir %q must be relative to the test's output directory", dir)
	}
	target := filepath.Join(r.out, "files", dir)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, err
	}
	dst := filepath.Join(target, filepath.Base(src))
	if err := r.machine(m).CopyFromMachine(r.ctx, src, dst); err != nil {
		return nil, err
	}
	return starlark.String(dst), nil
}

func forwardPortMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var hostPort, guestPort int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host_port", &hostPort, "guest_port", &guestPort); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.None, r.machine(m).ForwardPort(r.ctx, hostPort, guestPort)
}

func sleepMethod(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "seconds", &d); err != nil {
		return nil, err
	}
	r, m, err := receiver(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.None, r.machine(m).Sleep(r.ctx, d.d)
}

// blockMethod is block(*vlans) and unblock(*vlans): all the machine's VLANs
// when none are named.
func blockMethod(block bool) builtinFunc {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(kwargs) > 0 {
			return nil, fmt.Errorf("%s: takes VLAN numbers only", b.Name())
		}
		var vlans []int
		for _, a := range args {
			v, err := starlark.AsInt32(a)
			if err != nil {
				return nil, fmt.Errorf("%s: got %s, want a VLAN number", b.Name(), a.Type())
			}
			vlans = append(vlans, v)
		}
		r, m, err := receiver(thread, b)
		if err != nil {
			return nil, err
		}
		if block {
			return starlark.None, r.lab.Block(m.name, vlans...)
		}
		return starlark.None, r.lab.Unblock(m.name, vlans...)
	}
}
