package script

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

// The machines the calls' tests declare: one in fast mode, and one whose
// init is systemd for the unit methods, with a user for their user=.
const (
	fastDecl    = "server = machine(user_net = True, services = {'web': service('true')})"
	displayDecl = "server = machine(display = True)"
	systemdDecl = "server = machine(init = 'systemd', users = ['alice'], services = {'web': service('true')})"
)

// loadCall loads a file whose test makes one call, on line 3 at column 3,
// on the fast-mode machine.
func loadCall(t *testing.T, call string) error {
	t.Helper()
	return loadCallOn(t, fastDecl, call)
}

// loadCallOn is loadCall on the machine decl declares.
func loadCallOn(t *testing.T, decl, call string) error {
	t.Helper()
	src := decl + "\ndef test():\n  " + call + "\n"
	_, err := Load("testdata/call.star", []byte(src))
	return err
}

// TestMethodCallErrors: a mistake in a machine method call is refused by
// Load at its file:line:col, before any machine boots.
func TestMethodCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"missing required argument", "server.wait_until_succeeds()",
			"call.star:3:10: wait_until_succeeds() is missing required argument command"},
		{"missing second argument", "server.forward_port(8080)",
			"call.star:3:10: forward_port() is missing required argument guest_port"},
		{"no commands", "server.succeed(timeout = 5)",
			"call.star:3:10: succeed() wants at least 1 *commands"},
		{"two values for one parameter", "server.wait_for_file('/x', path = '/y')",
			"call.star:3:30: wait_for_file() got two values for path"},
		{"too many positional arguments", "server.wait_for_open_port(80, 'localhost', 5, 6)",
			"call.star:3:49: wait_for_open_port() takes at most 3 positional arguments"},
		{"unknown keyword", "server.wait_for_unit('web', timout = 5)",
			`call.star:3:31: wait_for_unit() has no parameter "timout" (did you mean timeout?)`},
		{"port above 65535", "server.wait_for_open_port(99999)",
			"call.star:3:29: wait_for_open_port(): port wants a port number 1..65535, got 99999"},
		{"port 0", "server.wait_for_closed_port(0)",
			"call.star:3:31: wait_for_closed_port(): port wants a port number 1..65535, got 0"},
		{"negative host port", "server.forward_port(-1, 80)",
			"call.star:3:23: forward_port(): host_port wants a port number 1..65535, got -1"},
		{"guest port out of range", "server.forward_port(8080, guest_port = 70000)",
			"call.star:3:42: forward_port(): guest_port wants a port number 1..65535, got 70000"},
		{"negative timeout", "server.wait_for_file('/x', timeout = -1)",
			"call.star:3:40: wait_for_file(): timeout wants a duration of 0 or more"},
		{"negative timeout string", "server.succeed('true', timeout = '-5s')",
			`call.star:3:36: succeed(): timeout wants a duration of 0 or more, such as "30s" or a number of seconds (None: the default), got "-5s"`},
		{"malformed duration", "server.wait_until_fails('true', timeout = '30 parsecs')",
			`call.star:3:45: wait_until_fails(): timeout wants a duration of 0 or more, such as "30s" or a number of seconds (None: the default), got "30 parsecs"`},
		{"negative sleep", "server.sleep(-0.5)",
			"call.star:3:16: sleep(): seconds wants a duration of 0 or more, such as \"30s\" or a number of seconds, got -0.5"},
		{"sleep None", "server.sleep(None)",
			"call.star:3:16: sleep(): seconds wants a duration of 0 or more, such as \"30s\" or a number of seconds, got NoneType"},
		{"VLAN 0", "server.block(0)",
			"call.star:3:16: block(): vlans[0] wants a VLAN number 1..254, got 0"},
		{"VLAN 255", "server.unblock(1, 255)",
			"call.star:3:21: unblock(): vlans[1] wants a VLAN number 1..254, got 255"},
		{"negative VLAN", "server.block(-2)",
			"call.star:3:16: block(): vlans[0] wants a VLAN number 1..254, got -2"},
		{"VLAN by keyword", "server.block(vlan = 2)",
			`call.star:3:16: block() has no parameter "vlan"`},
		{"missing host file", "server.copy_from_host('no-such-file', '/tmp/x')",
			`call.star:3:25: copy_from_host(): source wants a host file or directory that exists (relative paths are relative to the test file), got "no-such-file" (testdata/no-such-file does not exist)`},
		{"target_dir outside the output", "server.copy_from_vm('/etc/hosts', target_dir = '../x')",
			`call.star:3:50: copy_from_vm(): target_dir wants a relative directory without .., got "../x"`},
		{"wrong kind", "server.execute('true', check_return = 1)",
			"call.star:3:41: execute(): check_return wants True or False, got int"},
		{"wrong kind in *commands", "server.fail('true', 2)",
			"call.star:3:23: fail(): commands[1] wants a string, got int"},
		{"undeclared service by keyword", "server.wait_for_unit(unit = 'wbe')",
			`call.star:3:31: machine server declares no service "wbe" (did you mean web?)`},
		{"undeclared service after a keyword", "server.wait_for_unit(timeout = '5s', unit = 'wbe')",
			`call.star:3:47: machine server declares no service "wbe" (did you mean web?)`},
		{"timeout below a nanosecond", "server.wait_for_file('/x', timeout = 1e-10)",
			"call.star:3:40: wait_for_file(): timeout wants a duration of 0 or more"},
		{"machine alias with two machines", "machine.succeed('true')\nother = machine()",
			"call.star:3:3: machine.succeed: `machine` stands for the machine only in a file that declares exactly one; this one declares 2"},
		{"on the machine alias", "machine.wait_for_open_port(0)",
			"call.star:3:30: wait_for_open_port(): port wants a port number 1..65535, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCall(t, tt.call)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
}

// TestFunctionCallErrors: a mistake in a call of a top-level function is
// refused by Load at its file:line:col, as a method call's is.
func TestFunctionCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"loss above 1", "link_fault(server, server, loss = 1.5)",
			"call.star:3:37: link_fault(): loss wants a probability in [0, 1], got 1.5"},
		{"negative delay", "link_fault(server, server, delay = -1)",
			`call.star:3:38: link_fault(): delay wants a duration of 0 or more, such as "30s" or a number of seconds, got -1`},
		{"malformed jitter", "vlan_fault(1, jitter = '5 ticks')",
			`call.star:3:26: vlan_fault(): jitter wants a duration of 0 or more, such as "30s" or a number of seconds, got "5 ticks"`},
		{"negative rate", "vlan_fault(1, rate = -8)",
			"call.star:3:24: vlan_fault(): rate wants a rate in bits per second, 0 or more (0: no limit), got -8"},
		{"jitter above delay", "link_fault(server, server, delay = '10ms', jitter = '20ms')",
			"call.star:3:3: link_fault(): fault: jitter 20ms exceeds delay 10ms"},
		{"jitter above delay on a VLAN", "vlan_fault(1, '10ms', '20ms')",
			"call.star:3:3: vlan_fault(): fault: jitter 20ms exceeds delay 10ms"},
		{"fault VLAN out of range", "link_fault(server, server, vlan = 255)",
			"call.star:3:37: link_fault(): vlan wants a VLAN number 1..254, or 0 for all, got 255"},
		{"VLAN 0 for vlan_fault", "vlan_fault(0, loss = 0.1)",
			"call.star:3:14: vlan_fault(): vlan wants a VLAN number 1..254, got 0"},
		{"missing machine", "link_fault(server)",
			"call.star:3:3: link_fault() is missing required argument receiver"},
		{"not a machine", "link_fault('server', server)",
			"call.star:3:14: link_fault(): sender wants a machine, got string"},
		{"negative retry timeout", "retry(lambda last: True, timeout = -5)",
			`call.star:3:38: retry(): timeout wants a duration of 0 or more, such as "30s" or a number of seconds, got -5`},
		{"subtest without a function", "subtest('setup')",
			"call.star:3:3: subtest() is missing required argument fn"},
		{"subtest with a string for fn", "subtest('setup', 'setup')",
			"call.star:3:20: subtest(): fn wants a function, got string"},
		{"polling interval", "polling_condition(len, len, interval = '1 fortnight')",
			`call.star:3:42: polling_condition(): interval wants a duration of 0 or more, such as "30s" or a number of seconds, got "1 fortnight"`},
		{"partition of numbers", "partition([1, 2], [server])",
			"call.star:3:13: partition(): groups[0] wants a list of machines, got list holding int"},
		{"heal takes nothing", "heal(5)", "call.star:3:8: heal() takes no positional arguments"},
		{"unknown keyword", "start_all(wait = True)", `call.star:3:13: start_all() has no parameter "wait"`},
		{"log of a number", "log(42)", "call.star:3:7: log(): message wants a string, got int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCall(t, tt.call)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
}

// TestMethodCallsAccepted: what a call may legitimately write passes Load;
// values Load cannot see are left to the call.
func TestMethodCallsAccepted(t *testing.T) {
	calls := []string{
		"server.wait_for_open_port(65535, addr = '10.0.0.1', timeout = '2m')",
		"server.wait_for_unit(timeout = '30s', unit = 'web')",
		"server.succeed('true', 'false', timeout = None)",
		"server.wait_for_file('/x', timeout = 0)",
		"server.copy_from_host('hello.txt', '/tmp/hello')",
		"server.copy_from_host('/etc/hostname', '/tmp/h')",
		"server.block()",
		"server.unblock(1, 254)",
		"server.sleep(0.25)",
		"server.succeed(*['a', 'b'])",
		"server.wait_until_succeeds(**{'command': 'true'})",
		"server.wait_for_open_port(int('99999'))", // not a literal: refused when it runs
		"[server.wait_for_open_port(p) for p in [-1]]",
		"(lambda server: server.suceed())(1)", // a parameter, not the machine
		"link_fault(server, server, 1, '50ms', 0.01, 0, 1, 0.5, 8000000)",
		"link_fault(server, server)",                             // clears the fault
		"link_fault(server, server, jitter = '5ms')",             // jitter alone: around no delay
		"vlan_fault(1, delay = str(10) + 'ms', jitter = '20ms')", // the delay is not known before the call
		"vlan_fault(254, loss = 1)",
		"partition([server], [])",
		"retry(lambda last: last, 0.5)",
		"(lambda log: log(1))(print)", // a parameter, not the function
	}
	for _, call := range calls {
		if err := loadCall(t, call); err != nil {
			t.Errorf("%s: got %v, want no error", call, err)
		}
	}
}

// TestMethodCallErrorsAllAtOnce: a file with eight mistakes gets eight
// errors from one Load, in file order.
func TestMethodCallErrorsAllAtOnce(t *testing.T) {
	const file = "testdata/mistakes.star"
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(file, src)
	if err == nil {
		t.Fatal("got nil error")
	}
	want := []string{
		"6:12: wait_until_succeeds() is missing required argument command",
		"7:31: wait_for_open_port(): port wants a port number 1..65535, got 99999",
		"8:38: succeed(): timeout wants",
		`9:46: wait_for_file(): timeout wants a duration of 0 or more, such as "30s" or a number of seconds (None: the default), got "30 parsecs"`,
		"10:18: block(): vlans[0] wants a VLAN number 1..254, got 255",
		`11:27: copy_from_host(): source wants a host file or directory that exists`,
		"12:48: forward_port() got two values for host_port",
		`13:18: sleep(): seconds wants a duration of 0 or more, such as "30s" or a number of seconds, got "-5s"`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], file+":"+want[i]) {
			t.Errorf("error %d: got %q, want %q", i+1, got[i], file+":"+want[i])
		}
	}
}

// TestDeclarationAndCallErrorsAtOnce: a mistake in the file's declarations
// and one in a call come in the same report.
func TestDeclarationAndCallErrorsAtOnce(t *testing.T) {
	src := "server = machine()\ndef test(x):\n  server.wait_for_open_port(99999)\n"
	_, err := Load("both.star", []byte(src))
	for _, want := range []string{
		"both.star:2:1: test takes parameters",
		"both.star:3:29: wait_for_open_port(): port wants a port number 1..65535, got 99999",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}

// sample is a value of a kind: as a script writes it, and the Go value the
// implementation receives.
type sample struct {
	src  string
	want any
}

// sampleMachine is `server` when runtimeUnpack evaluates a call.
var sampleMachine = &machineValue{name: "server"}

// samples holds a good and a bad value for every kind the tables use; good
// values differ from the parameters' defaults, so they show they arrived.
var samples = map[*kind]struct{ good, bad sample }{
	strKind:       {sample{`"web"`, "web"}, sample{`1`, nil}},
	keyKind:       {sample{`"ctrl-alt-delete"`, "ctrl-alt-delete"}, sample{`"ctrl-alt-delet"`, nil}},
	charsKind:     {sample{`"echo hi\n"`, "echo hi\n"}, sample{`"naïve"`, nil}},
	shotKind:      {sample{`"boot"`, "boot"}, sample{`"../x"`, nil}},
	userKind:      {sample{`"alice"`, "alice"}, sample{`""`, nil}},
	boolKind:      {sample{`False`, false}, sample{`1`, nil}},
	portKind:      {sample{`8080`, 8080}, sample{`65536`, nil}},
	vlanKind:      {sample{`2`, 2}, sample{`-1`, nil}},
	faultVLANKind: {sample{`3`, 3}, sample{`255`, nil}},
	timeoutKind:   {sample{`"1m30s"`, 90 * time.Second}, sample{`-3`, nil}},
	secondsKind:   {sample{`2.5`, 2500 * time.Millisecond}, sample{`"soon"`, nil}},
	hostPathKind:  {sample{`"hello.txt"`, "testdata/hello.txt"}, sample{`"missing.txt"`, nil}},
	outDirKind:    {sample{`"sub/dir"`, "sub/dir"}, sample{`"/abs"`, nil}},
	probKind:      {sample{`0.25`, 0.25}, sample{`1.5`, nil}},
	rateKind:      {sample{`1000000`, 1000000}, sample{`-1`, nil}},
	callableKind:  {sample{`len`, starlark.Universe["len"]}, sample{`"len"`, nil}},
	machineKind:   {sample{`server`, sampleMachine}, sample{`1`, nil}},
	groupKind:     {sample{`[server]`, []string{"server"}}, sample{`[1]`, nil}},
	anyKind:       {sample{`"web"`, starlark.String("web")}, sample{}}, // refuses nothing
	ttyKind:       {sample{`"2"`, 2}, sample{`"64"`, nil}},
	regexKind:     {sample{`"login: +$"`, "login: +$"}, sample{`"(?=x)"`, nil}},
	keyDelayKind:  {sample{`"50ms"`, 50 * time.Millisecond}, sample{`-0.01`, nil}},
}

// writeCall writes a call of s with the given value for every parameter,
// by position or by keyword (parameters after *rest are always keywords),
// and two values for *rest.
func writeCall(s *signature, prefix string, value func(p param) string, byKeyword bool) string {
	var parts []string
	if s.variadic != nil {
		v := value(*s.variadic)
		parts = append(parts, v, v)
	}
	for _, p := range s.params {
		if byKeyword || s.variadic != nil {
			parts = append(parts, p.name+" = "+value(p))
		} else {
			parts = append(parts, value(p))
		}
	}
	return prefix + s.name + "(" + strings.Join(parts, ", ") + ")"
}

// runtimeUnpack unpacks a call the way the builtin does, with the values
// evaluated by Starlark itself.
func runtimeUnpack(t *testing.T, s *signature, prefix, call string) (args, error) {
	t.Helper()
	var a args
	fn := starlark.NewBuiltin(s.name, func(_ *starlark.Thread, _ *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return starlark.None, s.unpack(argv, kwargs, "testdata", &a)
	})
	expr := strings.Replace(call, prefix+s.name+"(", "f(", 1)
	env := starlark.StringDict{"f": fn, "server": sampleMachine}
	_, err := starlark.EvalOptions(fileOptions, &starlark.Thread{}, "call", expr, env)
	if err != nil {
		msg, _ := splitError(err)
		err = errors.New(msg)
	}
	return a, err
}

// TestMethodTable walks the method table: every method, called with a good
// value for each parameter by position and by keyword, passes Load and
// unpacks to those values; a wrong value, a missing argument and an
// unknown keyword are refused by Load and by the call, in the same words.
func TestMethodTable(t *testing.T) {
	for _, meth := range methodTable {
		decl := fastDecl
		if meth.systemd || meth.index("user") >= 0 {
			decl = systemdDecl
		}
		if meth.display {
			decl = displayDecl
		}
		t.Run(meth.name, func(t *testing.T) { walkSignature(t, &meth.signature, "server.", decl) })
	}
}

// TestFunctionTable walks the top-level functions' table likewise.
func TestFunctionTable(t *testing.T) {
	for _, fn := range functionTable {
		t.Run(fn.name, func(t *testing.T) { walkSignature(t, &fn.signature, "", fastDecl) })
	}
}

// walkSignature walks s's calls in files that declare decl.
func walkSignature(t *testing.T, s *signature, prefix, decl string) {
	good := func(p param) string { return samples[p.kind].good.src }
	for _, byKeyword := range []bool{false, true} {
		call := writeCall(s, prefix, good, byKeyword)
		if err := loadCallOn(t, decl, call); err != nil {
			t.Errorf("Load: %s: got %v, want no error", call, err)
		}
		a, err := runtimeUnpack(t, s, prefix, call)
		if err != nil {
			t.Fatalf("call: %s: got %v, want no error", call, err)
		}
		checkUnpacked(t, s, call, &a)
	}
	checkDefaults(t, s)
	var refusals []string
	params := s.params
	if s.variadic != nil {
		params = append(slices.Clone(params), *s.variadic)
	}
	for i, p := range params {
		if samples[p.kind].bad.src == "" {
			continue // the kind refuses nothing
		}
		bad := func(q param) string {
			if q.name == p.name {
				return samples[q.kind].bad.src
			}
			return good(q)
		}
		refusals = append(refusals, writeCall(s, prefix, bad, i%2 == 1))
	}
	refusals = append(refusals, prefix+s.name+"(bogus = 1)")
	if len(s.params) > 0 && s.params[0].def == nil || s.atLeast > 0 {
		refusals = append(refusals, prefix+s.name+"()")
	}
	for _, call := range refusals {
		checkRefusedAlike(t, s, prefix, decl, call)
	}
}

// checkUnpacked: every parameter's field holds the good sample (or, for
// *rest, two of it), and no two parameters share a field.
func checkUnpacked(t *testing.T, s *signature, call string, a *args) {
	t.Helper()
	fields := map[any]string{}
	params := s.params
	if s.variadic != nil {
		params = append(slices.Clone(params), *s.variadic)
	}
	for _, p := range params {
		ptr := p.into(a)
		if other, ok := fields[ptr]; ok {
			t.Errorf("%s and %s share a field", p.name, other)
		}
		fields[ptr] = p.name
		got := reflect.ValueOf(ptr).Elem().Interface()
		want := samples[p.kind].good.want
		if s.variadic != nil && p.name == s.variadic.name {
			w := reflect.MakeSlice(reflect.TypeOf(got), 0, 2)
			w = reflect.Append(w, reflect.ValueOf(want), reflect.ValueOf(want))
			want = w.Interface()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s: got %#v, want %#v", call, p.name, got, want)
		}
	}
}

// checkDefaults: every default unpacks with its own kind.
func checkDefaults(t *testing.T, s *signature) {
	t.Helper()
	for _, p := range s.params {
		if p.def == nil {
			continue
		}
		if _, err := p.kind.unpack(p.def, "testdata"); err != nil {
			t.Errorf("%s: default %s = %s: %v", s.name, p.name, p.def, err)
		}
	}
}

// checkRefusedAlike: Load refuses the call at line 3 and the call itself
// refuses it with the same message.
func checkRefusedAlike(t *testing.T, s *signature, prefix, decl, call string) {
	t.Helper()
	_, runErr := runtimeUnpack(t, s, prefix, call)
	loadErr := loadCallOn(t, decl, call)
	if runErr == nil || loadErr == nil {
		t.Errorf("%s: got Load error %v and call error %v, want both to refuse it", call, loadErr, runErr)
		return
	}
	re := regexp.MustCompile(`^testdata/call\.star:3:\d+: ` + regexp.QuoteMeta(runErr.Error()) + `$`)
	if !slices.ContainsFunc(strings.Split(loadErr.Error(), "\n"), re.MatchString) {
		t.Errorf("%s: Load says %q, the call says %q; want the same words", call, loadErr, runErr)
	}
}

// TestMethodCallRefusedAtRunTime: values Load cannot see are refused by
// the call (of a method or a function) with the words Load uses for
// literals, before the machine boots or the network changes (the run has
// no lab: using it would panic).
func TestMethodCallRefusedAtRunTime(t *testing.T) {
	const dur = `a duration of 0 or more, such as "30s" or a number of seconds`
	tests := []struct{ name, call, want string }{
		{"port", "server.wait_for_open_port(int('99999'))", "wait_for_open_port(): port wants a port number 1..65535, got 99999"},
		{"timeout", "server.succeed('true', timeout = str(-5) + 's')", `succeed(): timeout wants ` + dur + ` (None: the default), got "-5s"`},
		{"sleep", "server.sleep(-1 * 2)", "sleep(): seconds wants " + dur + ", got -2"},
		{"VLAN", "server.block(*[1, 300])", "block(): vlans[1] wants a VLAN number 1..254, got 300"},
		{"forward_port", "server.forward_port(**{'host_port': 0, 'guest_port': 80})", "forward_port(): host_port wants a port number 1..65535, got 0"},
		{"missing argument", "server.wait_until_succeeds(*[])", "wait_until_succeeds() is missing required argument command"},
		{"jitter above a computed delay", "vlan_fault(1, delay = str(10) + 'ms', jitter = '20ms')",
			"vlan_fault(): fault: jitter 20ms exceeds delay 10ms"},
		{"loss above 1", "link_fault(server, server, loss = 3 / 2)",
			"link_fault(): loss wants a probability in [0, 1], got 1.5"},
		{"missing host file", "server.copy_from_host('no-' + 'such', '/x')",
			`copy_from_host(): source wants a host file or directory that exists (relative paths are relative to the test file), got "no-such" (testdata/no-such does not exist)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "server = machine()\ndef test():\n  " + tt.call + "\n"
			f, err := Load("testdata/call.star", []byte(src))
			if err != nil {
				t.Fatalf("Load: got %v, want no error: the value is not a literal", err)
			}
			r := &run{ctx: t.Context(), file: f, test: "test", rep: &events{}}
			thread := &starlark.Thread{Name: "test"}
			thread.SetLocal(runKey, r)
			_, err = starlark.Call(thread, f.globals["test"], nil, nil)
			if err == nil {
				t.Fatal("got nil error")
			}
			if msg, _ := splitError(err); msg != tt.want {
				t.Errorf("got %q, want %q", msg, tt.want)
			}
		})
	}
}

// TestMethodsDocumented: docs/test-files.md lists every method of the table
// with its signature as the table has it (names, order, defaults), and no
// method the table lacks.
func TestMethodsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/test-files.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Machine methods\n")
	if !ok {
		t.Fatal("docs/test-files.md has no section ## Machine methods")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, meth := range methodTable {
		if sig := "`" + meth.String() + "`"; !strings.Contains(section, sig) {
			t.Errorf("docs/test-files.md does not document %s", sig)
		}
	}
	for _, m := range regexp.MustCompile("`([a-z_]+)\\(").FindAllStringSubmatch(section, -1) {
		if methodByName[m[1]] == nil {
			t.Errorf("docs/test-files.md documents %s(), which is not a machine method", m[1])
		}
	}
}

// TestFunctionsDocumented: docs/test-files.md lists every top-level
// function with its signature as the table has it.
func TestFunctionsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/test-files.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Functions\n")
	if !ok {
		t.Fatal("docs/test-files.md has no section ## Functions")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, fn := range functionTable {
		if sig := "`" + fn.String() + "`"; !strings.Contains(section, sig) {
			t.Errorf("docs/test-files.md does not document %s", sig)
		}
	}
}
