package script

import (
	"errors"
	"regexp"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/syntax"
)

// portingTable is where the docs list each NixOS form and vmlab's.
const portingTable = `see "Porting from NixOS" in docs/test-files.md`

// pythonStatements are Python statements Starlark lacks, by the word that
// starts them, with what to write instead.
var pythonStatements = map[string]string{
	"with":     `write subtest("name", fn) for "with subtest", machine.nested("name", fn) for "with machine.nested", polling_condition(condition, fn) for a polling condition; the block goes in a def or lambda`,
	"try":      `Starlark has no exceptions: run the command with execute() and check its status, or use wait_until_succeeds() or retry()`,
	"except":   `Starlark has no exceptions: run the command with execute() and check its status, or use wait_until_succeeds() or retry()`,
	"finally":  `Starlark has no exceptions: run the command with execute() and check its status, or use wait_until_succeeds() or retry()`,
	"import":   `Starlark has no import: re, time and json are there already; delete the line`,
	"from":     `Starlark has no import: re, time and json are there already; delete the line`,
	"assert":   `write assert_true(condition, "message"), or assert_eq(a, b)`,
	"class":    `Starlark has no classes: use functions, and dicts for state`,
	"raise":    `write fail("message")`,
	"del":      `Starlark has no del: reassign the variable, or d.pop(key) for a dict`,
	"global":   `the file's globals are read-only in tests: keep state in the test function (a list or dict you pass along)`,
	"nonlocal": `Starlark has no nonlocal: keep the state in a list or dict and change its contents`,
	"yield":    `Starlark has no generators: build and return a list`,
	"async":    `Starlark has no coroutines: machines booted with start_all() run at once`,
	"await":    `Starlark has no coroutines: machines booted with start_all() run at once`,
}

// pythonNames are NixOS driver names with no vmlab global of that name.
var pythonNames = map[string]string{
	"create_machine": `declare every machine at the top level with machine(...) instead: it boots on its first command (or start()), which is what create_machine and start() do in NixOS`,
	"t":              `NixOS's t (unittest's assertions) is assert_eq(a, b), assert_ne(a, b), assert_true(x), assert_false(x), assert_in(x, container)`,
	"nodes":          `the machines are globals named as declared, and machines lists them`,
}

// firstWord is the word a statement line starts with, and its column.
var firstWord = regexp.MustCompile(`^(\s*)([A-Za-z_]+|@)`)

// pythonHints turns the parser's and resolver's errors about Python that
// Starlark lacks (with, try, import, assert, f-strings, decorators,
// create_machine, ...) into what to write instead, at the construct's
// file:line:col. Other errors are returned as they are.
func pythonHints(err error, src []byte) error {
	var serr syntax.Error
	if errors.As(err, &serr) {
		if hint, pos, ok := statementHint(serr, src); ok {
			return syntax.Error{Pos: pos, Msg: hint + " (" + portingTable + ")"}
		}
		return err
	}
	var rerrs resolve.ErrorList
	if errors.As(err, &rerrs) {
		out := make(resolve.ErrorList, len(rerrs))
		for i, e := range rerrs {
			out[i] = e
			name, ok := strings.CutPrefix(e.Msg, "undefined: ")
			if hint := pythonNames[name]; ok && hint != "" {
				out[i].Msg = e.Msg + ": " + hint + " (" + portingTable + ")"
			}
		}
		return out
	}
	return err
}

// statementHint finds the Python construct on a syntax error's line: a
// statement Starlark lacks, a decorator or an f-string.
func statementHint(e syntax.Error, src []byte) (string, syntax.Position, bool) {
	lines := strings.Split(string(src), "\n")
	if e.Pos.Line < 1 || int(e.Pos.Line) > len(lines) {
		return "", e.Pos, false
	}
	line := lines[e.Pos.Line-1]
	pos := e.Pos
	if m := firstWord.FindStringSubmatch(line); m != nil {
		pos.Col = int32(len(m[1]) + 1)
		if m[2] == "@" {
			return `Starlark has no decorators: for @polling_condition write polling_condition(condition, fn)`, pos, true
		}
		if hint, ok := pythonStatements[m[2]]; ok {
			return "Python's " + m[2] + " is not Starlark: " + hint, pos, true
		}
	}
	if loc := fString.FindStringSubmatchIndex(line); loc != nil && strings.HasPrefix(e.Msg, "got string literal") {
		pos.Col = int32(loc[2] + 1)
		return `Starlark has no f-strings: write "%s" % x or "{}".format(x)`, pos, true
	}
	return "", e.Pos, false
}

// fString is an f-string's prefix and quote: the parser reads the prefix
// as a name and stops at the string after it.
var fString = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])((?i:f|rf|fr)["'])`)
