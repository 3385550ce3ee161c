package script

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// The machine methods' parameters: one definition per name, shared by the
// methods that take it, so a name means one thing everywhere.
var (
	pTimeout     = param{"timeout", timeoutKind, starlark.None, func(a *args) any { return &a.timeout }}
	pCommands    = param{"commands", strKind, nil, func(a *args) any { return &a.commands }}
	pCommand     = param{"command", strKind, nil, func(a *args) any { return &a.command }}
	pCheckReturn = param{"check_return", boolKind, starlark.True, func(a *args) any { return &a.checkReturn }}
	pPath        = param{"path", strKind, nil, func(a *args) any { return &a.path }}
	pIsDatagram  = param{"is_datagram", boolKind, starlark.False, func(a *args) any { return &a.isDatagram }}
	pPort        = param{"port", portKind, nil, func(a *args) any { return &a.port }}
	pAddr        = param{"addr", strKind, starlark.String("localhost"), func(a *args) any { return &a.addr }}
	pRegex       = param{"regex", regexKind, nil, func(a *args) any { return &a.regex }}
	pUnit        = param{"unit", strKind, nil, func(a *args) any { return &a.unit }}
	pJobname     = param{"jobname", strKind, nil, func(a *args) any { return &a.unit }}
	pUser        = param{"user", userKind, starlark.None, func(a *args) any { return &a.user }}
	pQ           = param{"q", strKind, nil, func(a *args) any { return &a.q }}
	pProperty    = param{"property", strKind, nil, func(a *args) any { return &a.property }}
	pState       = param{"require_state", strKind, starlark.String("active"), func(a *args) any { return &a.requireState }}
	pHostSource  = param{"source", hostPathKind, nil, func(a *args) any { return &a.source }}
	pGuestSource = param{"source", strKind, nil, func(a *args) any { return &a.source }}
	pTarget      = param{"target", strKind, nil, func(a *args) any { return &a.target }}
	pTargetDir   = param{"target_dir", outDirKind, starlark.String(""), func(a *args) any { return &a.targetDir }}
	pHostPort    = param{"host_port", portKind, nil, func(a *args) any { return &a.hostPort }}
	pGuestPort   = param{"guest_port", portKind, nil, func(a *args) any { return &a.guestPort }}
	pSeconds     = param{"seconds", secondsKind, nil, func(a *args) any { return &a.seconds }}
	pVLANs       = param{"vlans", vlanKind, nil, func(a *args) any { return &a.vlans }}
)

// method is a machine method: its signature, whether it needs the machine
// up (machines boot lazily, as in NixOS: the first call that needs one
// boots it, and the boot is its own event), whether it reports the
// commands it runs itself (otherwise the call is one timed step of the
// test's timeline), whether it needs a machine whose init is systemd (Load
// refuses it on another), and what it does with its unpacked arguments.
type method struct {
	signature
	boots   bool
	reports bool
	systemd bool
	display bool // needs a machine with a display (screen.go)
	do      func(c *call) (starlark.Value, error)
}

// call is one call of a method or a top-level function: the thread, the
// run, the machine, and the arguments, unpacked and checked against the
// signature.
type call struct {
	thread *starlark.Thread
	r      *run
	m      *machineValue // nil in a top-level function's call
	args
	file string // what the call wrote on the host (copy_from_vm), for the reports to link
}

// mm is the running machine.
func (c *call) mm() *machine.Machine { return c.r.machine(c.m) }

// methodTable is every machine method, named as in the NixOS driver. It
// drives Load's check of calls (checkAttrs), the calls themselves
// (method.builtin), dir() and the docs (TestMethodsDocumented).
var methodTable = slices.Concat(methodTableBase, screenMethods, ocrMethods, xMethods)

var methodTableBase = []*method{
	// start returns at once, as NixOS's: the boot runs in the background
	// and the machine's next call waits for it (run.awaitStart).
	{signature: sig("start"), do: func(c *call) (starlark.Value, error) { return none(c.r.startInBackground(c.m)) }},
	{signature: sig("shutdown"), do: func(c *call) (starlark.Value, error) { return none(c.mm().Shutdown(c.r.ctx)) }},
	{signature: sig("reboot"), boots: true, do: func(c *call) (starlark.Value, error) { return none(c.mm().Reboot(c.r.ctx)) }},
	{signature: sig("crash"), do: func(c *call) (starlark.Value, error) { c.mm().Crash(); return starlark.None, nil }},
	{signature: sig("wait_for_shutdown", pTimeout), do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForShutdown(c.r.ctx, c.timeout))
	}},
	{signature: sig("succeed", pTimeout).rest(pCommands, 1), boots: true, reports: true, do: commands(success)},
	{signature: sig("fail", pTimeout).rest(pCommands, 1), boots: true, reports: true, do: commands(failure)},
	{signature: sig("execute", pCommand, pCheckReturn, pTimeout), boots: true, reports: true, do: execute},
	{signature: sig("wait_until_succeeds", pCommand, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return str(c.mm().WaitUntilSucceeds(c.r.ctx, c.command, c.timeout))
	}},
	{signature: sig("wait_until_fails", pCommand, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return str(c.mm().WaitUntilFails(c.r.ctx, c.command, c.timeout))
	}},
	{signature: sig("wait_for_file", pPath, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForFile(c.r.ctx, c.path, c.timeout))
	}},
	{signature: sig("wait_for_open_port", pPort, pAddr, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForOpenPort(c.r.ctx, c.addr, c.port, c.timeout))
	}},
	{signature: sig("wait_for_closed_port", pPort, pAddr, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForClosedPort(c.r.ctx, c.addr, c.port, c.timeout))
	}},
	{signature: sig("wait_for_open_unix_socket", pPath, pIsDatagram, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForUnixSocket(c.r.ctx, c.path, c.isDatagram, c.timeout))
	}},
	{signature: sig("wait_for_console_text", pRegex, pTimeout), do: func(c *call) (starlark.Value, error) {
		return str(c.mm().WaitForConsoleText(c.r.ctx, c.regex, c.timeout))
	}},
	{signature: sig("wait_for_unit", pUnit, pUser, pTimeout), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().WaitForUnit(c.r.ctx, c.unit, c.user, c.timeout))
	}},
	// The unit methods of a systemd machine, as NixOS's: systemctl in the
	// guest, whose command lines (and outputs) the reports show.
	{signature: sig("systemctl", pQ, pUser), boots: true, reports: true, systemd: true, do: func(c *call) (starlark.Value, error) {
		return systemctl(c, c.q)
	}},
	{signature: sig("start_job", pJobname, pUser), boots: true, reports: true, systemd: true, do: func(c *call) (starlark.Value, error) {
		return systemctl(c, machine.JobQuery("start", c.unit))
	}},
	{signature: sig("stop_job", pJobname, pUser), boots: true, reports: true, systemd: true, do: func(c *call) (starlark.Value, error) {
		return systemctl(c, machine.JobQuery("stop", c.unit))
	}},
	{signature: sig("get_unit_info", pUnit, pUser), boots: true, systemd: true, do: getUnitInfo},
	{signature: sig("get_unit_property", pUnit, pProperty, pUser), boots: true, systemd: true, do: func(c *call) (starlark.Value, error) {
		return str(c.mm().GetUnitProperty(c.r.ctx, c.unit, c.property, c.user))
	}},
	{signature: sig("require_unit_state", pUnit, pState, pUser), boots: true, systemd: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().RequireUnitState(c.r.ctx, c.unit, c.requireState, c.user))
	}},
	{signature: sig("copy_from_host", pHostSource, pTarget), boots: true, do: func(c *call) (starlark.Value, error) {
		return none(c.mm().CopyFromHost(c.r.ctx, c.source, c.target))
	}},
	{signature: sig("copy_from_vm", pGuestSource, pTargetDir), boots: true, do: copyFromVM},
	{signature: sig("copy_from_machine", pGuestSource, pTargetDir), boots: true, do: copyFromVM},
	{signature: sig("get_console_log"), reports: true, do: func(c *call) (starlark.Value, error) {
		var text strings.Builder
		for _, l := range c.mm().ConsoleLog() {
			text.WriteString(l + "\n")
		}
		return starlark.String(text.String()), nil
	}},
	{signature: sig("log", fMessage), reports: true, do: func(c *call) (starlark.Value, error) {
		c.r.log(c.m.name, c.message)
		return starlark.None, nil
	}},
	// nested is NixOS's `with machine.nested("x"):`, a named step of the
	// log: here a subtest, so the reports nest what it runs under it.
	{signature: sig("nested", fName, fFn), reports: true, do: subtest},
	{signature: sig("block").rest(pVLANs, 0), do: func(c *call) (starlark.Value, error) {
		return none(c.r.lab.Block(c.m.name, c.vlans...))
	}},
	{signature: sig("unblock").rest(pVLANs, 0), do: func(c *call) (starlark.Value, error) {
		return none(c.r.lab.Unblock(c.m.name, c.vlans...))
	}},
	{signature: sig("forward_port", pHostPort, pGuestPort), do: func(c *call) (starlark.Value, error) {
		return none(c.mm().ForwardPort(c.r.ctx, c.hostPort, c.guestPort))
	}},
	{signature: sig("sleep", pSeconds), do: func(c *call) (starlark.Value, error) {
		return none(c.mm().Sleep(c.r.ctx, c.seconds))
	}},
	// The text of a virtual terminal, read from the kernel (tty.go).
	{signature: sig("get_tty_text", pTTY), boots: true, do: getTTYText},
	{signature: sig("wait_until_tty_matches", pTTY, pRegexp, pTimeout), boots: true, do: waitUntilTTYMatches},
	// shell_interact boots the machine itself, once it knows there is a
	// terminal to attach.
	{signature: sig("shell_interact"), do: shellInteract},
	// console_interact likewise (console.go).
	{signature: sig("console_interact"), do: consoleInteract},
}

// methodByName indexes methodTable.
var methodByName = func() map[string]*method {
	byName := make(map[string]*method, len(methodTable))
	for _, m := range methodTable {
		byName[m.name] = m
	}
	return byName
}()

// methodNames lists methods and attributes, sorted, for errors and dir().
var methodNames = func() []string {
	names := []string{"name"}
	for _, m := range methodTable {
		names = append(names, m.name)
	}
	slices.Sort(names)
	return names
}()

func none(err error) (starlark.Value, error) { return starlark.None, err }

func str(s string, err error) (starlark.Value, error) { return starlark.String(s), err }

// builtin is the method as Starlark calls it, bound to a machine: the
// arguments are unpacked and checked first (and a unit method refused on
// a machine without systemd), so a mistake costs no boot;
// then the polling conditions are checked, the machine boots if the method
// needs it up, and the call runs.
func (meth *method) builtin(thread *starlark.Thread, b *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	c := &call{thread: thread, m: b.Receiver().(*machineValue)}
	r, err := runOf(thread, c.m.name+"."+meth.name+"()")
	if err != nil {
		return nil, err
	}
	c.r = r
	if err := meth.unpack(argv, kwargs, filepath.Dir(r.file.Name), &c.args); err != nil {
		return nil, err
	}
	if err := checkInit(meth, c); err != nil {
		return nil, err
	}
	if meth.display && !c.m.spec.Display {
		return nil, needsDisplay(meth, c.m)
	}
	if err := checkOCRRun(meth, c.m); err != nil {
		return nil, err
	}
	if err := r.checkConditions(thread); err != nil {
		return nil, err
	}
	// A boot start() left running comes first: a.start(); a.crash()
	// crashes the booted machine, not one QEMU has not started yet. The
	// network calls act on the switch and need no machine.
	if meth.name != "start" && !networkCalls[meth.name] {
		if err := r.awaitStart(c.m); err != nil {
			return nil, err
		}
	}
	if meth.boots {
		if err := r.boot(c.m); err != nil {
			return nil, err
		}
	}
	if meth.reports || meth.quiet(c) {
		return meth.do(c)
	}
	if networkCalls[meth.name] {
		return networkStep(r, c.m.name, meth.name, argv, kwargs, func() (starlark.Value, error) { return meth.do(c) })
	}
	return meth.timed(c, argv, kwargs)
}

// quiet reports whether the call asked to stay off the timeline
// (send_key's log=False, as NixOS's keeps it out of its log).
func (meth *method) quiet(c *call) bool { return meth.index("log") >= 0 && !c.log }

// timed reports a method call (a wait, a copy, a power change) as a step
// of the test's timeline, with its duration and error, so reports show
// where the time went. A boot the call needed came before and is reported
// on its own.
func (meth *method) timed(c *call, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	text := callText(meth.name, argv, kwargs)
	c.r.rep.Emit(report.Event{Kind: report.CommandStart, Test: c.r.testID(), Path: c.r.pathCopy(), Machine: c.m.name, Command: text})
	start := time.Now()
	v, err := meth.do(c)
	ev := report.Event{Kind: report.Command, Test: c.r.testID(), Path: c.r.pathCopy(), Machine: c.m.name,
		Command: text, Duration: time.Since(start)}
	outcome(&ev, false, 0, err)
	if err != nil {
		ev.Error = err.Error()
	}
	ev.File = c.file
	c.r.rep.Emit(ev)
	return v, err
}

// callText renders a call as the script wrote it: wait_for_unit("web").
func callText(name string, argv starlark.Tuple, kwargs []starlark.Tuple) string {
	var parts []string
	for _, a := range argv {
		parts = append(parts, a.String())
	}
	for _, kv := range kwargs {
		parts = append(parts, fmt.Sprintf("%s = %s", kv[0].(starlark.String).GoString(), kv[1].String()))
	}
	return name + "(" + strings.Join(parts, ", ") + ")"
}

// commands is succeed(*commands, timeout=None) and fail(...): run each
// command, fail on the wrong exit status, return the outputs joined.
func commands(want expect) func(c *call) (starlark.Value, error) {
	return func(c *call) (starlark.Value, error) {
		var out strings.Builder
		for _, cmd := range c.commands {
			res, err := c.r.command(c.m, cmd, c.timeout, want)
			if err != nil {
				return nil, err
			}
			out.WriteString(res.Stdout)
		}
		return starlark.String(out.String()), nil
	}
}

// execute is execute(command, check_return=True, timeout=None): the exit
// status and output, as a tuple; the status is -1 with check_return=False,
// as in NixOS (a port compares it with ints, which None would fail).
func execute(c *call) (starlark.Value, error) {
	res, err := c.r.command(c.m, c.command, c.timeout, anyStatus)
	if err != nil {
		return nil, err
	}
	status := res.Status
	if !c.checkReturn {
		status = -1
	}
	return starlark.Tuple{starlark.MakeInt(status), starlark.String(res.Stdout)}, nil
}

// systemctl runs `systemctl q` for systemctl(), start_job() and
// stop_job(), as a command of the timeline, and returns (status, stdout)
// as execute() does.
func systemctl(c *call, q string) (starlark.Value, error) {
	res, err := c.r.reported(c.m, machine.SystemctlLine(q, c.user), anyStatus, func() (machine.Result, error) {
		return c.mm().Systemctl(c.r.ctx, q, c.user)
	})
	if err != nil {
		return nil, err
	}
	return starlark.Tuple{starlark.MakeInt(res.Status), starlark.String(res.Stdout)}, nil
}

// getUnitInfo is get_unit_info(unit, user=None): the unit's properties as
// a dict of strings.
func getUnitInfo(c *call) (starlark.Value, error) {
	props, err := c.mm().GetUnitInfo(c.r.ctx, c.unit, c.user)
	if err != nil {
		return nil, err
	}
	d := starlark.NewDict(len(props))
	for _, k := range slices.Sorted(maps.Keys(props)) {
		d.SetKey(starlark.String(k), starlark.String(props[k]))
	}
	return d, nil
}

// copyFromVM is copy_from_vm(source, target_dir=""): as in NixOS the copy
// lands in the test's output directory, under target_dir.
func copyFromVM(c *call) (starlark.Value, error) {
	target, dst, err := copyTarget(c.r.out, c.targetDir, c.source)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, err
	}
	if err := c.mm().CopyFromMachine(c.r.ctx, c.source, dst); err != nil {
		return nil, err
	}
	c.file = dst
	return starlark.String(dst), nil
}
