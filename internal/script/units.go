package script

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/near"
	"github.com/vmlab/vmlab/internal/spec"
)

// Load's checks of the unit methods' calls: what the file says enough
// about to refuse before a machine boots.

// rootPasswd is the guests' /etc/passwd before their users are added: the
// host's (the guests' root is the host's).
var rootPasswd = "/etc/passwd"

// checkedUnitMethods are the methods whose literal unit Load looks up on
// a systemd machine: those that fail later on a unit systemd cannot find.
var checkedUnitMethods = []string{"wait_for_unit", "start_job", "require_unit_state"}

// checkUnitCall checks a method call about units against the machine: a
// unit method on a machine without systemd, a literal user the guest will
// not have, a literal system unit neither the root nor the machine
// declares; in fast mode, wait_for_unit's service (checkUnit).
func checkUnitCall(m *machineValue, meth *method, dot *syntax.DotExpr, call *syntax.CallExpr, host spec.Host, strs []string) []error {
	user := callArg(call, meth.index("user"), "user")
	if !m.spec.Systemd() {
		switch {
		case meth.systemd:
			return []error{fmt.Errorf("%s: %w", dot.Name.NamePos, needsSystemd(meth, m, false))}
		case user != nil && literal(user) != starlark.None:
			return []error{fmt.Errorf("%s: %w", start(user), needsSystemd(meth, m, true))}
		}
		return checkUnit(m, meth.name, call)
	}
	var errs []error
	if lit, ok := user.(*syntax.Literal); ok && lit.Token == syntax.STRING {
		errs = append(errs, checkUser(m, lit)...)
	}
	if user == nil && slices.Contains(checkedUnitMethods, meth.name) && host.Units != nil {
		if lit, ok := callArg(call, 0, meth.params[0].name).(*syntax.Literal); ok && lit.Token == syntax.STRING {
			errs = append(errs, checkSystemUnit(m, lit, host, strs)...)
		}
	}
	return errs
}

// needsSystemd is the refusal of a unit method (or, with user, of a
// user's unit) on a machine whose init is not systemd, at load time and
// at run time alike.
func needsSystemd(meth *method, m *machineValue, user bool) error {
	if user {
		return fmt.Errorf("%s(user = ...): machine %s has no systemd, so no user units (its init is fast mode): declare it with machine(init = %q)",
			meth.name, m.name, spec.InitSystemd)
	}
	return fmt.Errorf("%s(): machine %s has no systemd (its init is fast mode): declare it with machine(init = %q)",
		meth.name, m.name, spec.InitSystemd)
}

// checkInit refuses, when the call runs, what needsSystemd says: before
// the call boots the machine.
func checkInit(meth *method, c *call) error {
	switch {
	case c.m.spec.Systemd():
		return nil
	case meth.systemd:
		return needsSystemd(meth, c.m, false)
	case c.user != "":
		return needsSystemd(meth, c.m, true)
	}
	return nil
}

// checkUser refuses a user the machine does not declare and the root's
// /etc/passwd does not have: its user units cannot exist.
func checkUser(m *machineValue, lit *syntax.Literal) []error {
	name := lit.Value.(string)
	var declared []string
	for _, u := range m.spec.Setup.Users {
		declared = append(declared, u.Name)
	}
	all, people := passwdNames(rootPasswd)
	if slices.Contains(declared, name) || slices.Contains(all, name) {
		return nil
	}
	// The hint comes from the accounts one logs in to: "bob" is not a
	// misspelled "bin".
	return []error{fmt.Errorf("%s: machine %s has no user %q%s: declare it with machine(users = [%q])",
		lit.TokenPos, m.name, name, near.Hint(name, append(declared, people...)), name)}
}

// passwdNames returns the user names of an /etc/passwd file, and those of
// them with a login shell (not nologin or false); none when it cannot be
// read.
func passwdNames(path string) (all, people []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if f[0] == "" || strings.HasPrefix(f[0], "#") || len(f) < 2 {
			continue
		}
		all = append(all, f[0])
		if shell := f[len(f)-1]; len(f) == 7 && !strings.HasSuffix(shell, "nologin") && !strings.HasSuffix(shell, "/false") {
			people = append(people, f[0])
		}
	}
	return all, people
}

// checkSystemUnit refuses a system unit that neither the root's unit
// directories nor the machine's units, services and unit files written
// with files = have (what enable names is among them: spec's Check sees
// to it). Units systemd makes at
// run time rather than reads from a file (devices, mounts, slices, scopes,
// swaps) and patterns are not checked, nor are units another of the
// file's strings names (strs, see fileStrings): a test may make one as it
// runs, as NixOS tests do (systemd-run --unit=probe, a unit file written
// with succeed or copy_from_host), and a typo is named nowhere else.
func checkSystemUnit(m *machineValue, lit *syntax.Literal, host spec.Host, strs []string) []error {
	name := spec.UnitName(lit.Value.(string))
	if strings.ContainsAny(name, "*?[") || !slices.ContainsFunc([]string{".service", ".socket", ".target", ".timer", ".path"},
		func(s string) bool { return strings.HasSuffix(name, s) }) {
		return nil
	}
	known := slices.Concat(host.Units(), m.spec.DeclaredUnits(), fileUnits(m.spec.Setup.Files))
	if spec.HasUnit(known, name) || mentioned(strings.TrimSuffix(name, path.Ext(name)), strs) {
		return nil
	}
	return []error{fmt.Errorf("%s: machine %s: no unit %s in units, services or the root's /%s and /%s%s: declare it in units, or install the package that ships it on the host (the guests' root is the host's); a unit the test makes as it runs passes when another of the file's strings names it",
		lit.TokenPos, m.name, name, spec.UnitDirs[0], spec.UnitDirs[1], near.Mean(spec.NearUnits(name, known)))}
}

// fileStrings returns the file's string literals but the units the unit
// methods name and the machines' declarations (which checkSystemUnit
// reads as such): where the file names a unit it makes as it runs
// ("systemd-run --unit=probe ...", "/etc/systemd/system/probe.service").
func fileStrings(f *syntax.File) []string {
	unitArgs := make(map[syntax.Expr]bool)
	var strs []string
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			if id, ok := n.Fn.(*syntax.Ident); ok && id.Name == "machine" {
				if b, ok := id.Binding.(*resolve.Binding); ok && b.Scope == resolve.Predeclared {
					return false
				}
			}
			// A call is walked before its arguments.
			if dot, ok := n.Fn.(*syntax.DotExpr); ok {
				if meth := methodByName[dot.Name.Name]; meth != nil && len(meth.params) > 0 &&
					(meth.params[0].name == "unit" || meth.params[0].name == "jobname") {
					unitArgs[callArg(n, 0, meth.params[0].name)] = true
				}
			}
		case *syntax.Literal:
			if s, ok := n.Value.(string); ok && n.Token == syntax.STRING && !unitArgs[n] {
				strs = append(strs, s)
			}
		}
		return true
	})
	return strs
}

// mentioned reports whether one of strs names the unit whose name without
// its type is stem: stem stands there as a word of a unit name, ended by
// anything but a unit name's characters, or by its type or instance
// ("--unit=probe ", "probe.service", "probe@1"), not as part of another
// name ("probe-old").
func mentioned(stem string, strs []string) bool {
	unitChar := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(`:-_.\@`, c) >= 0
	}
	for _, s := range strs {
		for i := 0; ; {
			j := strings.Index(s[i:], stem)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(stem)
			if (start == 0 || !unitChar(s[start-1])) && (end == len(s) || !unitChar(s[end]) || s[end] == '.' || s[end] == '@') {
				return true
			}
			i = start + 1
		}
	}
	return false
}

// fileUnits returns the names of the unit files among files: those in
// a system unit directory, /etc/systemd/system or /run/systemd/system
// (and the distribution's).
func fileUnits(files []spec.File) []string {
	dirs := append([]string{"run/systemd/system"}, spec.UnitDirs...)
	var names []string
	for _, f := range files {
		dir, name := path.Split(path.Clean(f.Path))
		if slices.Contains(dirs, strings.Trim(dir, "/")) {
			names = append(names, name)
		}
	}
	return names
}

// callArg is a call's argument: the positional one at index (none when
// index < 0), or the keyword one called name; nil when the call has
// neither.
func callArg(call *syntax.CallExpr, index int, name string) syntax.Expr {
	for i, arg := range call.Args {
		kw, ok := arg.(*syntax.BinaryExpr)
		switch {
		case !ok || kw.Op != syntax.EQ:
			if i == index {
				return arg
			}
		case kw.X.(*syntax.Ident).Name == name:
			return kw.Y
		}
	}
	return nil
}
