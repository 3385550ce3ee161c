package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// ErrExit ends a REPL chunk that called exit() or quit(): the REPL
// leaves, as on Ctrl-D.
var ErrExit = errors.New("exit() leaves the REPL")

// replFile is the file name of REPL chunks in errors and backtraces.
const replFile = "<repl>"

// Eval runs one REPL chunk on the session: statements, and returns the
// value of the expression it ends with (None when it ends with another
// statement). The chunk sees the
// predeclared functions, the file's globals (read-only, as in a test),
// the file's machines and the REPL's own: tests(), help(), and each test
// by its name, which runs it as RunTest does and returns whether it
// passed (a cancelled test stops the chunk). What a chunk defines stays for the next ones; `_` is the last
// expression's value. ctx's end cancels the chunk, not the session.
func (s *Session) Eval(ctx context.Context, src string) (v starlark.Value, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer recoverInto(&err)
	f, err := fileOptions.Parse(replFile, src, 0)
	if err != nil {
		return nil, err
	}
	thread, end := s.thread(ctx, "repl")
	defer end()
	globals := s.replGlobals()
	expr := lastExpr(f)
	if expr == nil {
		return starlark.None, starlark.ExecREPLChunk(f, thread, globals)
	}
	if len(f.Stmts) > 1 { // the statements before it
		f.Stmts = f.Stmts[:len(f.Stmts)-1]
		if err := starlark.ExecREPLChunk(f, thread, globals); err != nil {
			return nil, err
		}
	}
	v, err = starlark.EvalExprOptions(f.Options, thread, expr, globals)
	if err != nil {
		return nil, err
	}
	globals["_"] = v
	return v, nil
}

// lastExpr is the expression a chunk ends with ("g()" after a def,
// "x" in "x = 1; x"), whose value Eval returns, or nil when it ends with
// another statement.
func lastExpr(f *syntax.File) syntax.Expr {
	if len(f.Stmts) == 0 {
		return nil
	}
	if stmt, ok := f.Stmts[len(f.Stmts)-1].(*syntax.ExprStmt); ok {
		return stmt.X
	}
	return nil
}

// Complete reports whether src is a whole REPL chunk, one Eval can run:
// false while the parser wants more lines (an open bracket or string, a
// def, if, for or while whose block has not ended with a blank line or a
// line back at the left margin, as in Python's REPL). A chunk with a
// syntax error is complete: Eval reports the error.
func Complete(src string) bool {
	lines := strings.SplitAfter(src, "\n")
	// A line of a comment alone is not read: Starlark's REPL scanner
	// takes it as a blank line, which ends a block, where Python goes on
	// (a function pasted with comments in its body). A chunk of comments
	// alone is complete.
	code := slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		l = strings.TrimSpace(l)
		return l == "" || strings.HasPrefix(l, "#")
	})
	if len(code) == 0 {
		return true
	}
	// Nor is a blank line followed by an indented one: it is inside a
	// block (a file's function piped in), which goes on.
	lines = slices.DeleteFunc(lines, func(l string) bool {
		return l == "" || strings.HasPrefix(strings.TrimSpace(l), "#")
	})
	for i := len(lines) - 2; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == "" && indented(lines[i+1]) {
			lines = slices.Delete(lines, i, i+1)
		}
	}
	wantsMore := false
	readline := func() ([]byte, error) {
		if len(lines) > 0 {
			line := lines[0]
			lines = lines[1:]
			return []byte(line), nil
		}
		wantsMore = true
		return nil, io.EOF
	}
	fileOptions.ParseCompoundStmt(replFile, readline) // a syntax error is Eval's to report
	return !wantsMore
}

// indented reports whether line is code that starts with a space or a
// tab: inside a block.
func indented(line string) bool {
	return strings.TrimSpace(line) != "" && (line[0] == ' ' || line[0] == '\t')
}

// ErrorText is how vmlab run shows a failure: its message, and where in
// the script it happened (a backtrace; "" when it has none). Nil is no
// failure: "", "".
func ErrorText(err error) (msg, where string) {
	if err == nil {
		return "", ""
	}
	return splitError(err)
}

// Failure is how vmlab run shows a failure in the session: its message,
// the file's line it happened on ("file:line: text"; "" when it happened
// in a REPL chunk) and the backtrace, without its last line when that
// only repeats the message ("Error in succeed: MESSAGE").
func (s *Session) Failure(err error) (msg, line, where string) {
	msg, where = ErrorText(err)
	where = strings.TrimRight(where, "\n")
	if i := strings.LastIndex(where, "\nError"); i >= 0 && strings.HasSuffix(where, ": "+msg) {
		where = where[:i]
	}
	return msg, s.file.sourceLine(err), where
}

// Completions returns what word, the end of a line being typed, can
// become: a global's name ("sta" → "start_all"), or a machine's method or
// a module's member after a dot ("a.su" → "a.succeed"), sorted.
func (s *Session) Completions(word string) []string {
	s.mu.Lock()
	globals := s.replGlobals()
	s.mu.Unlock()
	var names []string
	head, last, dotted := strings.Cut(word, ".")
	switch {
	case !dotted:
		names, last = slices.Collect(maps.Keys(globals)), head
	default:
		if strings.Contains(last, ".") {
			return nil
		}
		if v, ok := globals[head].(starlark.HasAttrs); ok {
			names = v.AttrNames()
		}
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, last) {
			if dotted {
				n = head + "." + n
			}
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// replGlobals are the REPL chunks' globals: made on the first Eval, then
// what the chunks define is added to them.
func (s *Session) replGlobals() starlark.StringDict {
	if s.globals != nil {
		return s.globals
	}
	g := predeclared(s.file)
	// The REPL's own names, unless the file has its own.
	builtin := func(name string, fn func(*starlark.Thread) (starlark.Value, error)) {
		g[name] = starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
				return nil, err
			}
			return fn(thread)
		})
	}
	for _, name := range []string{"exit", "quit"} { // Python's
		builtin(name, func(*starlark.Thread) (starlark.Value, error) { return nil, ErrExit })
	}
	builtin("tests", func(*starlark.Thread) (starlark.Value, error) {
		l := make([]starlark.Value, len(s.file.Tests))
		for i, t := range s.file.Tests {
			l[i] = starlark.String(t)
		}
		return starlark.NewList(l), nil
	})
	builtin("help", func(thread *starlark.Thread) (starlark.Value, error) {
		thread.Print(thread, s.help())
		return starlark.None, nil
	})
	maps.Copy(g, s.file.globals)
	for _, name := range s.file.Tests {
		builtin(name, func(*starlark.Thread) (starlark.Value, error) {
			ctx := s.r.ctx
			err := s.runTest(ctx, name)
			if ctx.Err() != nil {
				return nil, context.Cause(ctx) // Ctrl-C stops the chunk too
			}
			return starlark.Bool(err == nil), nil
		})
	}
	s.globals = g
	return g
}

// help says what the REPL has bound.
func (s *Session) help() string {
	var machines, own []string
	for _, m := range s.file.ordered() {
		machines = append(machines, m.name)
	}
	for _, name := range s.file.globalOrder() {
		if _, isMachine := s.file.globals[name].(*machineValue); !isMachine && !strings.HasPrefix(name, "_") && !isTestName(name) {
			own = append(own, name)
		}
	}
	var funcs []string
	for _, fn := range functionTable {
		funcs = append(funcs, fn.name)
	}
	var b strings.Builder
	if len(machines) > 0 {
		fmt.Fprintf(&b, "machines: %s (they boot on first use; dir(%s) lists the methods)\n", strings.Join(machines, ", "), machines[0])
	}
	fmt.Fprintf(&b, "tests: %s (call one to run it on these machines: %s())\n", strings.Join(s.file.Tests, ", "), s.file.Tests[0])
	if len(own) > 0 {
		fmt.Fprintf(&b, "the file's: %s\n", strings.Join(own, ", "))
	}
	fmt.Fprintf(&b, "functions: %s\n", strings.Join(funcs, ", "))
	fmt.Fprintf(&b, "modules: %s\n", strings.Join(sortedNames(modules), ", "))
	b.WriteString("tests() lists the tests, help() shows this; Ctrl-C cancels the running call; ")
	if s.leaving != "" {
		b.WriteString(s.leaving)
	} else {
		b.WriteString("Ctrl-D (or exit()) leaves and stops the machines")
	}
	return b.String()
}

// SetLeaving replaces what help() says about leaving the REPL: vmlab run
// -i's REPL has more than one way out.
func (s *Session) SetLeaving(text string) {
	s.mu.Lock()
	s.leaving = text
	s.mu.Unlock()
}

func isTestName(name string) bool { return name == "test" || strings.HasPrefix(name, "test_") }
