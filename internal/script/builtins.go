package script

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vnet"
)

// builtins are the functions a test file can call; all but machine() only
// inside a test.
var builtins = map[string]builtinFunc{
	"machine":           machineBuiltin,
	"service":           serviceBuiltin,
	"start_all":         startAll,
	"join_all":          joinAll,
	"subtest":           subtest,
	"retry":             retry,
	"log":               logBuiltin,
	"partition":         partition,
	"heal":              heal,
	"link_fault":        linkFault,
	"vlan_fault":        vlanFault,
	"polling_condition": pollingCondition,
}

// predeclared returns the file's builtins. machine is special: called, it
// declares a machine; in a file with exactly one machine it also stands for
// that machine (machine.succeed(...)), as in NixOS.
func predeclared(file *File) starlark.StringDict {
	d := make(starlark.StringDict, len(builtins))
	for name, fn := range builtins {
		d[name] = starlark.NewBuiltin(name, fn)
	}
	d["machine"] = &declarer{Builtin: starlark.NewBuiltin("machine", machineBuiltin), file: file}
	d["machines"] = machinesView{file}
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
	return ok || name == "machines"
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

// startAll boots every machine at once and waits for them all.
func startAll(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "start_all()")
	if err != nil {
		return nil, err
	}
	return starlark.None, r.each(r.boot)
}

// joinAll waits until every machine has shut down.
func joinAll(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "join_all()")
	if err != nil {
		return nil, err
	}
	return starlark.None, r.each(func(m *machineValue) error { return r.machine(m).WaitForShutdown(r.ctx, 0) })
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

// subtest(name, fn) runs fn as a named step of the test (Starlark has no
// `with`; NixOS's `with subtest("x"):` becomes subtest("x", fn)).
func subtest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "subtest()")
	if err != nil {
		return nil, err
	}
	r.path = append(r.path, name)
	path := r.pathCopy()
	r.rep.Emit(report.Event{Kind: report.SubtestStart, Test: r.test, Path: path})
	start := time.Now()
	v, err := starlark.Call(thread, fn, nil, nil)
	end := report.Event{Kind: report.SubtestEnd, Test: r.test, Path: path, Passed: err == nil, Duration: time.Since(start)}
	if err != nil {
		end.Error, end.Where = splitError(err)
	}
	r.rep.Emit(end)
	r.path = r.path[:len(r.path)-1]
	return v, err
}

// retry(fn, timeout=900) calls fn(last_try) until it returns True.
func retry(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	timeout := duration{900 * time.Second}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "fn", &fn, "timeout?", &timeout); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "retry()")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout.d)
	for {
		last := time.Now().After(deadline)
		v, err := starlark.Call(thread, fn, starlark.Tuple{starlark.Bool(last)}, nil)
		if err != nil {
			return nil, err
		}
		if v.Truth() {
			return starlark.None, nil
		}
		if last {
			return nil, fmt.Errorf("retry: %s did not return True within %v", fn.Name(), timeout.d)
		}
		// retry's contract is to call fn again after a pause; 100 ms keeps
		// it responsive without spinning.
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
}

func logBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "message", &msg); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "log()")
	if err != nil {
		return nil, err
	}
	r.log("", msg)
	return starlark.None, nil
}

// partition(group, group, ...) splits the networks; groups are lists of
// machines.
func partition(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("partition: takes groups of machines only")
	}
	r, err := runOf(thread, "partition()")
	if err != nil {
		return nil, err
	}
	var groups [][]string
	for i, a := range args {
		iter, ok := a.(starlark.Iterable)
		if !ok {
			return nil, fmt.Errorf("partition: group %d: got %s, want a list of machines", i+1, a.Type())
		}
		var names []string
		it := iter.Iterate()
		var v starlark.Value
		for it.Next(&v) {
			m, ok := v.(*machineValue)
			if !ok {
				it.Done()
				return nil, fmt.Errorf("partition: group %d: got %s, want machines", i+1, v.Type())
			}
			names = append(names, m.name)
		}
		it.Done()
		groups = append(groups, names)
	}
	return starlark.None, r.lab.Partition(groups...)
}

func heal(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "heal()")
	if err != nil {
		return nil, err
	}
	r.lab.Heal()
	return starlark.None, nil
}

// faultArgs unpacks delay=, jitter=, loss=, duplicate=, reorder=, rate=.
func faultArgs(name string, pairs []any, args starlark.Tuple, kwargs []starlark.Tuple) (vnet.Fault, error) {
	var delay, jitter duration
	var loss, dup, reorder starlark.Float
	var rate int64
	all := append(pairs, "delay?", &delay, "jitter?", &jitter, "loss?", &loss, "duplicate?", &dup,
		"reorder?", &reorder, "rate?", &rate)
	if err := starlark.UnpackArgs(name, args, kwargs, all...); err != nil {
		return vnet.Fault{}, err
	}
	return vnet.Fault{Delay: delay.d, Jitter: jitter.d, Loss: float64(loss), Duplicate: float64(dup),
		Reorder: float64(reorder), Rate: rate}, nil
}

// link_fault(from, to, vlan=0, delay=, ...) sets the fault on one direction
// of a link; with no fault arguments it clears it.
func linkFault(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var from, to *machineValue
	vlan := 0
	f, err := faultArgs(b.Name(), []any{"from", &from, "to", &to, "vlan?", &vlan}, args, kwargs)
	if err != nil {
		return nil, err
	}
	r, err := runOf(thread, "link_fault()")
	if err != nil {
		return nil, err
	}
	return starlark.None, r.lab.SetLinkFault(from.name, to.name, vlan, f)
}

// vlan_fault(vlan, delay=, ...) sets the fault on every link of a VLAN.
func vlanFault(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vlan int
	f, err := faultArgs(b.Name(), []any{"vlan", &vlan}, args, kwargs)
	if err != nil {
		return nil, err
	}
	r, err := runOf(thread, "vlan_fault()")
	if err != nil {
		return nil, err
	}
	return starlark.None, r.lab.SetVLANFault(vlan, f)
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

// polling_condition(condition, body, interval=0): run body() while
// condition() must hold; it is checked before every machine call body
// makes, at most once per interval (NixOS's `with polling_condition:`).
func pollingCondition(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cond, body starlark.Callable
	var interval duration
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "condition", &cond, "body", &body, "interval?", &interval); err != nil {
		return nil, err
	}
	r, err := runOf(thread, "polling_condition()")
	if err != nil {
		return nil, err
	}
	r.conditions = append(r.conditions, &condition{fn: cond, interval: interval.d})
	defer func() { r.conditions = r.conditions[:len(r.conditions)-1] }()
	if err := r.checkConditions(thread); err != nil {
		return nil, err
	}
	return starlark.Call(thread, body, nil, nil)
}
