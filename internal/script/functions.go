package script

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vnet"
)

// The top-level functions' parameters.
var (
	fName    = param{"name", strKind, nil, func(a *args) any { return &a.name }}
	fFn      = param{"fn", callableKind, nil, func(a *args) any { return &a.fn }}
	fMessage = param{"message", strKind, nil, func(a *args) any { return &a.message }}
	fTimeout = param{"timeout", secondsKind, starlark.MakeInt(900), func(a *args) any { return &a.timeout }}
	// fTimeoutSeconds is NixOS's name of retry's timeout.
	fTimeoutSeconds = param{"timeout_seconds", timeoutKind, starlark.None, func(a *args) any { return &a.retryTimeout }}
	// The assertions' operands and message (NixOS's t.assertEqual(a, b, msg)).
	fA         = param{"a", anyKind, nil, func(a *args) any { return &a.first }}
	fB         = param{"b", anyKind, nil, func(a *args) any { return &a.second }}
	fX         = param{"x", anyKind, nil, func(a *args) any { return &a.first }}
	fContainer = param{"container", anyKind, nil, func(a *args) any { return &a.second }}
	fMsg       = param{"msg", strKind, starlark.String(""), func(a *args) any { return &a.msg }}
	fCondition = param{"condition", callableKind, nil, func(a *args) any { return &a.condition }}
	fBody      = param{"body", callableKind, nil, func(a *args) any { return &a.body }}
	fInterval  = param{"interval", secondsKind, starlark.MakeInt(0), func(a *args) any { return &a.interval }}
	fGroups    = param{"groups", groupKind, nil, func(a *args) any { return &a.groups }}
	// `from` is a keyword in Starlark (link_fault(from = a) would not
	// parse), so link_fault's ends are sender and receiver.
	fSender     = param{"sender", machineKind, nil, func(a *args) any { return &a.sender }}
	fReceiver   = param{"receiver", machineKind, nil, func(a *args) any { return &a.receiver }}
	fAnyVLAN    = param{"vlan", faultVLANKind, starlark.MakeInt(0), func(a *args) any { return &a.vlan }}
	fVLAN       = param{"vlan", vlanKind, nil, func(a *args) any { return &a.vlan }}
	faultParams = []param{
		{"delay", secondsKind, starlark.MakeInt(0), func(a *args) any { return &a.delay }},
		{"jitter", secondsKind, starlark.MakeInt(0), func(a *args) any { return &a.jitter }},
		{"loss", probKind, starlark.MakeInt(0), func(a *args) any { return &a.loss }},
		{"duplicate", probKind, starlark.MakeInt(0), func(a *args) any { return &a.duplicate }},
		{"reorder", probKind, starlark.MakeInt(0), func(a *args) any { return &a.reorder }},
		{"rate", rateKind, starlark.MakeInt(0), func(a *args) any { return &a.rate }},
	}
)

// function is a function a test calls (start_all, subtest, link_fault,
// ...): its signature and what it does with the unpacked arguments.
// machine() and service() declare rather than act; they are machine.go's.
type function struct {
	signature
	do func(c *call) (starlark.Value, error)
}

// functionTable is every function a test calls. Like methodTable it drives
// Load's check of calls (checkAttrs), the calls themselves and the docs
// (TestFunctionsDocumented).
var functionTable = []*function{
	{sig("start_all"), func(c *call) (starlark.Value, error) { return none(c.r.each(c.r.boot)) }},
	{sig("join_all"), func(c *call) (starlark.Value, error) {
		return none(c.r.each(func(m *machineValue) error {
			if err := c.r.awaitStart(m); err != nil {
				return err
			}
			return c.r.machine(m).WaitForShutdown(c.r.ctx, 0)
		}))
	}},
	{sig("subtest", fName, fFn), subtest},
	{sig("retry", fFn, fTimeout, fTimeoutSeconds), retry},
	{sig("polling_condition", fCondition, fBody, fInterval), pollingCondition},
	{sig("log", fMessage), func(c *call) (starlark.Value, error) { c.r.log("", c.message); return starlark.None, nil }},
	{sig("partition").rest(fGroups, 0), func(c *call) (starlark.Value, error) { return none(c.r.lab.Partition(c.groups...)) }},
	{sig("serial_stdout_on"), func(c *call) (starlark.Value, error) { c.r.quietConsole.Store(false); return starlark.None, nil }},
	{sig("serial_stdout_off"), func(c *call) (starlark.Value, error) { c.r.quietConsole.Store(true); return starlark.None, nil }},
	{sig("assert_eq", fA, fB, fMsg), assertion(func(a, b starlark.Value) (bool, string, error) {
		eq, err := starlark.Equal(a, b)
		return eq, fmt.Sprintf("%s != %s", a, b), err
	})},
	{sig("assert_ne", fA, fB, fMsg), assertion(func(a, b starlark.Value) (bool, string, error) {
		eq, err := starlark.Equal(a, b)
		return !eq, fmt.Sprintf("%s == %s", a, b), err
	})},
	{sig("assert_true", fX, fMsg), assertion(func(x, _ starlark.Value) (bool, string, error) {
		return bool(x.Truth()), fmt.Sprintf("%s is not true", x), nil
	})},
	{sig("assert_false", fX, fMsg), assertion(func(x, _ starlark.Value) (bool, string, error) {
		return !bool(x.Truth()), fmt.Sprintf("%s is not false", x), nil
	})},
	{sig("assert_in", fX, fContainer, fMsg), assertion(func(x, container starlark.Value) (bool, string, error) {
		in, err := starlark.Binary(syntax.IN, x, container)
		if err != nil {
			return false, "", err
		}
		return bool(in.Truth()), fmt.Sprintf("%s not in %s", x, container), nil
	})},
	{sig("heal"), func(c *call) (starlark.Value, error) { c.r.lab.Heal(); return starlark.None, nil }},
	{faultSig("link_fault", fSender, fReceiver, fAnyVLAN), func(c *call) (starlark.Value, error) {
		return none(c.r.lab.SetLinkFault(c.sender.name, c.receiver.name, c.vlan, c.fault()))
	}},
	{faultSig("vlan_fault", fVLAN), func(c *call) (starlark.Value, error) {
		return none(c.r.lab.SetVLANFault(c.vlan, c.fault()))
	}},
}

// faultSig is the signature of a function that sets a link fault: its own
// parameters, then the fault's. The fault is checked whole (jitter at most
// the delay) once delay and jitter are known.
func faultSig(name string, own ...param) signature {
	s := sig(name, append(own, faultParams...)...)
	s.valid = func(a *args, known func(string) bool) error {
		if !known("delay") || !known("jitter") {
			return nil
		}
		return a.fault().Validate()
	}
	return s
}

// builtin is the function as Starlark calls it: only inside a test, with
// its arguments unpacked and checked.
func (fn *function) builtin(thread *starlark.Thread, _ *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r, err := runOf(thread, fn.name+"()")
	if err != nil {
		return nil, err
	}
	c := &call{r: r, thread: thread}
	if err := fn.unpack(argv, kwargs, filepath.Dir(r.file.Name), &c.args); err != nil {
		return nil, err
	}
	if networkCalls[fn.name] {
		return networkStep(r, "", fn.name, argv, kwargs, func() (starlark.Value, error) { return fn.do(c) })
	}
	return fn.do(c)
}

// fault is the link fault that link_fault's and vlan_fault's arguments
// describe; no arguments describe none, which clears the fault.
func (a *args) fault() vnet.Fault {
	return vnet.Fault{Delay: a.delay, Jitter: a.jitter, Loss: a.loss, Duplicate: a.duplicate,
		Reorder: a.reorder, Rate: int64(a.rate)}
}

// subtest(name, fn) runs fn as a named step of the test (Starlark has no
// `with`; NixOS's `with subtest("x"):` becomes subtest("x", fn)).
func subtest(c *call) (starlark.Value, error) {
	r := c.r
	r.path = append(r.path, c.name)
	path := r.pathCopy()
	r.rep.Emit(report.Event{Kind: report.SubtestStart, Test: r.testID(), Path: path})
	start := time.Now()
	v, err := starlark.Call(c.thread, c.fn, nil, nil)
	end := report.Event{Kind: report.SubtestEnd, Test: r.testID(), Path: path, Passed: err == nil, Duration: time.Since(start)}
	if err != nil {
		end.Error, end.Where = splitError(err)
		end.Source = r.file.sourceLine(err)
	}
	r.rep.Emit(end)
	r.path = r.path[:len(r.path)-1]
	return v, err
}

// retry(fn, timeout=900, timeout_seconds=None) calls fn(last_try) until
// it returns True; timeout_seconds, NixOS's name, wins when given.
func retry(c *call) (starlark.Value, error) {
	if c.retryTimeout > 0 {
		c.timeout = c.retryTimeout
	}
	deadline := time.Now().Add(c.timeout)
	for {
		last := time.Now().After(deadline)
		v, err := starlark.Call(c.thread, c.fn, starlark.Tuple{starlark.Bool(last)}, nil)
		if err != nil {
			return nil, err
		}
		if v.Truth() {
			return starlark.None, nil
		}
		if last {
			return nil, fmt.Errorf("retry: %s did not return True within %v", c.fn.Name(), c.timeout)
		}
		// retry's contract is to call fn again after a pause; 100 ms keeps
		// it responsive without spinning.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-c.r.ctx.Done():
			return nil, c.r.ctx.Err()
		}
	}
}

// polling_condition(condition, body, interval=0): run body() while
// condition() must hold; it is checked before every machine call body
// makes, at most once per interval (NixOS's `with polling_condition:`).
func pollingCondition(c *call) (starlark.Value, error) {
	r := c.r
	r.conditions = append(r.conditions, &condition{fn: c.condition, interval: c.interval})
	defer func() { r.conditions = r.conditions[:len(r.conditions)-1] }()
	if err := r.checkConditions(c.thread); err != nil {
		return nil, err
	}
	return starlark.Call(c.thread, c.body, nil, nil)
}

// assertion is assert_eq, assert_true, ...: holds says whether the
// operands pass and, when not, how they failed ("3 != 4"); the test fails
// with that and the script's message.
func assertion(holds func(a, b starlark.Value) (bool, string, error)) func(c *call) (starlark.Value, error) {
	return func(c *call) (starlark.Value, error) {
		ok, why, err := holds(c.first, c.second)
		if err != nil {
			return nil, err
		}
		if ok {
			return starlark.None, nil
		}
		if c.msg != "" {
			why += ": " + c.msg
		}
		return nil, errors.New(why)
	}
}
