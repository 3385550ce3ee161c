package script

import (
	"errors"
	"strings"
	"testing"
)

// TestEvalLastExpression: a chunk of statements that ends with an
// expression returns its value, as Python's REPL prints it: a call after
// a def with no blank line between (a script piped in), or `x = 1; x`.
func TestEvalLastExpression(t *testing.T) {
	s, _ := openSession(t, replSrc)
	for _, st := range []struct{ src, want string }{
		{"def g():\n    return 5\ng()\n", "5"},
		{"y = 2; y * 3", "6"},
		{"_", "6"},
		{"y = 4\n", "None"},
		{"z = y; z = z + 1", "None"},
	} {
		v, err := s.Eval(t.Context(), st.src)
		if err != nil || v.String() != st.want {
			t.Errorf("Eval(%q): got %v, %v; want %s", st.src, v, err, st.want)
		}
	}
	// A failing statement stops the chunk before its expression.
	if v, err := s.Eval(t.Context(), "fail('first'); print('not reached')"); err == nil {
		t.Errorf("got %v, want the failure", v)
	}
}

// TestEvalLoad: load() at the prompt says that vmlab files load no other
// files and what to do instead, not Starlark's "load not implemented by
// this application".
func TestEvalLoad(t *testing.T) {
	s, _ := openSession(t, replSrc)
	_, err := s.Eval(t.Context(), `load("helpers.star", "f")`)
	msg, _ := ErrorText(err)
	if want := `cannot load helpers.star: a vmlab file loads no other files; define what you need in repl.star or at the prompt`; msg != want {
		t.Errorf("got %q, want %q", msg, want)
	}
}

// TestEvalExit: exit() and quit(), as in Python's REPL, end the chunk
// with ErrExit, which the REPL takes as Ctrl-D; a file's own exit wins.
func TestEvalExit(t *testing.T) {
	s, _ := openSession(t, replSrc)
	for _, src := range []string{"exit()", "quit()", "print('before'); exit()"} {
		if _, err := s.Eval(t.Context(), src); !errors.Is(err, ErrExit) {
			t.Errorf("Eval(%q): got %v, want ErrExit", src, err)
		}
	}
	own, _ := openSession(t, replSrc+"\ndef exit():\n    return 'mine'\n")
	if v, err := own.Eval(t.Context(), "exit()"); err != nil || v.String() != `"mine"` {
		t.Errorf("with the file's exit: got %v, %v; want \"mine\"", v, err)
	}
}

// TestEvalFileNamesWin: the REPL's own names (help, tests, exit) give way
// to the file's globals of the same names, which its functions use; a
// test called with arguments says it takes none.
func TestEvalFileNamesWin(t *testing.T) {
	s, _ := openSession(t, replSrc+"\ntests = [\"mine\"]\n\ndef help():\n    return \"my help\"\n")
	for _, st := range []struct{ src, want string }{
		{"help()", `"my help"`},
		{"tests", `["mine"]`},
	} {
		if v, err := s.Eval(t.Context(), st.src); err != nil || v.String() != st.want {
			t.Errorf("Eval(%q): got %v, %v; want %s", st.src, v, err, st.want)
		}
	}
	_, err := s.Eval(t.Context(), "test_pass(1)")
	if msg, _ := ErrorText(err); !strings.Contains(msg, "test_pass: got 1 arguments, want at most 0") {
		t.Errorf("test_pass(1): got %q, want it refused", msg)
	}
}

// TestCompleteComments: a comment line in a block does not end it, as in
// Python's REPL (Starlark's own REPL takes it as a blank line): a
// function pasted from a file with comments in its body stays whole. A
// chunk of comments alone is complete.
func TestCompleteComments(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{"def f():\n    # why\n", false},
		{"def f():\n    # why\n    return 1\n", false},
		{"def f():\n    x = 1\n  # out of line\n    return x\n", false},
		{"def f():\n    # why\n    return 1\n\n", true},
		{"# a note\n", true},
		{"   # a note\n", true},
		{"x = 1  # a note\n", true},
		{"s = \"\"\"\n# not a comment\n", false},
		{"s = \"\"\"\n# not a comment\n\"\"\"\n", true},
	} {
		if got := Complete(tt.src); got != tt.want {
			t.Errorf("Complete(%q): got %v, want %v", tt.src, got, tt.want)
		}
	}
	s, _ := openSession(t, replSrc)
	if v, err := s.Eval(t.Context(), "def f():\n    # why\n    return 1\n\nf()\n"); err != nil || v.String() != "1" {
		t.Errorf("a def with a comment: got %v, %v; want 1", v, err)
	}
}

// TestCompleteBlankInBlock: a blank line followed by an indented line
// (a function of a file, piped in, with blank lines in its body) does not
// end the block; at its end, a blank line does.
func TestCompleteBlankInBlock(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{"def f():\n    x = 1\n\n    return x\n", false},
		{"def f():\n    x = 1\n\n    return x\n\n", true},
		{"def f():\n    x = 1\n\n", true}, // nothing follows yet: a prompt's chunk ends
	} {
		if got := Complete(tt.src); got != tt.want {
			t.Errorf("Complete(%q): got %v, want %v", tt.src, got, tt.want)
		}
	}
}
