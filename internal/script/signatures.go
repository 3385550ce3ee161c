package script

import (
	"fmt"
	"slices"

	"go.starlark.net/syntax"
)

// param is a method parameter for the static check: its name and the kind
// of literal it takes ("str", "int", "bool", "dur": a number or a string).
type param struct{ name, kind string }

// signature is a method's parameters; variadic takes any number of
// positional arguments of that kind.
type signature struct {
	params   []param
	variadic string
}

var timeoutParam = param{"timeout", "dur"}

// signatures lets Load check calls with literal arguments before any VM
// boots: server.wait_for_open_port("80") is an error at its column.
var signatures = map[string]signature{
	"succeed":                   {params: []param{timeoutParam}, variadic: "str"},
	"fail":                      {params: []param{timeoutParam}, variadic: "str"},
	"execute":                   {params: []param{{"command", "str"}, {"check_return", "bool"}, timeoutParam}},
	"wait_until_succeeds":       {params: []param{{"command", "str"}, timeoutParam}},
	"wait_until_fails":          {params: []param{{"command", "str"}, timeoutParam}},
	"wait_for_file":             {params: []param{{"path", "str"}, timeoutParam}},
	"wait_for_open_unix_socket": {params: []param{{"path", "str"}, timeoutParam}},
	"wait_for_open_port":        {params: []param{{"port", "int"}, {"addr", "str"}, timeoutParam}},
	"wait_for_closed_port":      {params: []param{{"port", "int"}, {"addr", "str"}, timeoutParam}},
	"wait_for_console_text":     {params: []param{{"regex", "str"}, timeoutParam}},
	"wait_for_unit":             {params: []param{{"unit", "str"}, timeoutParam}},
	"wait_for_shutdown":         {params: []param{timeoutParam}},
	"copy_from_host":            {params: []param{{"source", "str"}, {"target", "str"}}},
	"copy_from_vm":              {params: []param{{"source", "str"}, {"target_dir", "str"}}},
	"forward_port":              {params: []param{{"host_port", "int"}, {"guest_port", "int"}}},
	"sleep":                     {params: []param{{"seconds", "dur"}}},
	"block":                     {variadic: "int"},
	"unblock":                   {variadic: "int"},
	"start":                     {},
	"shutdown":                  {},
	"reboot":                    {},
	"crash":                     {},
}

// checkCall checks one machine method call's literal arguments.
func checkCall(method string, call *syntax.CallExpr) []error {
	sig, ok := signatures[method]
	if !ok {
		return nil
	}
	var errs []error
	positional := sig.params
	if sig.variadic != "" {
		positional = nil
	}
	i := 0
	for _, arg := range call.Args {
		if kw, ok := arg.(*syntax.BinaryExpr); ok && kw.Op == syntax.EQ {
			name := kw.X.(*syntax.Ident).Name
			idx := slices.IndexFunc(sig.params, func(p param) bool { return p.name == name })
			if idx < 0 {
				errs = append(errs, fmt.Errorf("%s: %s() has no parameter %q", kw.X.(*syntax.Ident).NamePos, method, name))
				continue
			}
			errs = append(errs, checkLiteral(method, sig.params[idx], kw.Y)...)
			continue
		}
		switch {
		case sig.variadic != "":
			errs = append(errs, checkLiteral(method, param{"argument", sig.variadic}, arg)...)
		case i < len(positional):
			errs = append(errs, checkLiteral(method, positional[i], arg)...)
		default:
			start, _ := arg.Span()
			errs = append(errs, fmt.Errorf("%s: %s() takes at most %d arguments", start, method, len(positional)))
		}
		i++
	}
	return errs
}

// checkLiteral checks a literal argument's kind; other expressions are left
// to run time.
func checkLiteral(method string, p param, e syntax.Expr) []error {
	var got string
	switch e := e.(type) {
	case *syntax.Literal:
		switch e.Token {
		case syntax.STRING:
			got = "str"
		case syntax.INT:
			got = "int"
		case syntax.FLOAT:
			got = "float"
		default:
			return nil
		}
	case *syntax.Ident:
		if e.Name != "True" && e.Name != "False" {
			return nil
		}
		got = "bool"
	default:
		return nil
	}
	ok := got == p.kind || p.kind == "dur" && (got == "str" || got == "int" || got == "float")
	if ok {
		return nil
	}
	want := map[string]string{"str": "a string", "int": "an int", "bool": "True or False", "dur": `a duration such as "30s" or a number of seconds`}[p.kind]
	start, _ := e.Span()
	return []error{fmt.Errorf("%s: %s(): %s wants %s, got %s", start, method, p.name, want, got)}
}
