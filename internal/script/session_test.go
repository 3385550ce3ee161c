package script

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestComplete(t *testing.T) {
	tests := []struct {
		name, src string
		want      bool
	}{
		{"expression", "1 + 2\n", true},
		{"assignment", "x = 1\n", true},
		{"blank", "\n", true},
		{"open bracket", "x = [1,\n", false},
		{"bracket closed", "x = [1,\n 2]\n", true},
		{"open call", "a.succeed(\n", false},
		{"def header", "def f():\n", false},
		{"def body", "def f():\n    return 1\n", false},
		{"def ended by a blank line", "def f():\n    return 1\n\n", true},
		{"for ended by a line at the margin", "for x in [1]:\n    print(x)\nprint(2)\n", true},
		{"nested if", "def f(x):\n    if x:\n        return 1\n", false},
		{"triple-quoted string", "s = \"\"\"one\n", false},
		{"syntax error", "x = = 1\n", true},
		{"unbalanced closer", ")\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Complete(tt.src); got != tt.want {
				t.Errorf("Complete(%q): got %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

// replSrc is a file whose tests need no machine: a session runs them
// without booting anything.
const replSrc = `
a = machine()
LIMIT = 3

def helper(x):
    return x * LIMIT

def test_pass():
    log("passing")

def test_fail():
    fail("broken on purpose")
`

func openSession(t *testing.T, src string) (*Session, *events) {
	t.Helper()
	f, err := Load("repl.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	s, err := f.Open(t.Context(), &machine.Boot{}, t.TempDir(), ev) // nothing boots
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ev
}

func TestEval(t *testing.T) {
	s, ev := openSession(t, replSrc)
	steps := []struct {
		src, want, wantErr string
	}{
		{src: "helper(2)", want: "6"},
		{src: "_ + 1", want: "7"},
		{src: "def g(y):\n    return helper(y) + 1\n", want: "None"},
		{src: "g(1)", want: "4"},
		{src: "x = [1, 2]\nx.append(3)\n", want: "None"},
		{src: "x", want: "[1, 2, 3]"},
		{src: "tests()", want: `["test_pass", "test_fail"]`},
		{src: "undefined_name", wantErr: "undefined: undefined_name"},
		{src: "fail('stop')", wantErr: "stop"},
		{src: "x = = 1", wantErr: "got '=', want primary expression"},
		{src: "a.suceed('true')", wantErr: "machine has no .suceed field or method"},
		{src: "machine(name = 'c')", wantErr: "declare machines at the top level"},
		{src: "LIMIT = 4\nLIMIT", want: "4"}, // a chunk ending with an expression returns it
		{src: "LIMIT", want: "4"},
		{src: "helper(1)", want: "3"}, // the file's functions see the file's globals
		{src: "test_pass()", want: "True"},
		{src: "test_fail()", want: "False"},
		{src: "x", want: "[1, 2, 3]"}, // errors and tests leave the REPL's globals
	}
	for _, st := range steps {
		v, err := s.Eval(t.Context(), st.src)
		if st.wantErr != "" {
			msg, _ := ErrorText(err)
			if err == nil || !strings.Contains(msg, st.wantErr) {
				t.Errorf("Eval(%q): got %v, %v; want an error with %q", st.src, v, err, st.wantErr)
			}
			continue
		}
		if err != nil || v.String() != st.want {
			t.Errorf("Eval(%q): got %v, %v; want %s", st.src, v, err, st.want)
		}
	}
	// The tests were reported as vmlab run reports them.
	var ends []string
	for _, e := range ev.find(report.TestEnd) {
		ends = append(ends, e.Test+" "+map[bool]string{true: "pass", false: "fail: " + e.Error}[e.Passed])
	}
	if want := "repl.test_pass pass|repl.test_fail fail: fail: broken on purpose"; strings.Join(ends, "|") != want {
		t.Errorf("got test ends %q, want %q", strings.Join(ends, "|"), want)
	}
	if logs := ev.find(report.Log); len(logs) != 1 || logs[0].Test != "repl.test_pass" || logs[0].Text != "passing" {
		t.Errorf("got logs %+v, want test_pass's, under its name", logs)
	}
}

func TestEvalPrintAndHelp(t *testing.T) {
	s, ev := openSession(t, replSrc)
	for _, src := range []string{"print('hello')", "help()"} {
		if _, err := s.Eval(t.Context(), src); err != nil {
			t.Fatalf("Eval(%q): %v", src, err)
		}
	}
	logs := ev.find(report.Log)
	if len(logs) != 2 || logs[0].Text != "hello" || logs[0].Test != "repl.repl" {
		t.Fatalf("got logs %+v, want print's line under repl.repl, then help's", logs)
	}
	for _, want := range []string{"machines: a", "tests: test_pass, test_fail", "the file's: LIMIT, helper", "start_all"} {
		if !strings.Contains(logs[1].Text, want) {
			t.Errorf("help() says %q, want it to hold %q", logs[1].Text, want)
		}
	}
}

// started signals each Log event "started": the chunk under test runs.
type started struct {
	events
	ch chan struct{}
}

func (e *started) Emit(ev report.Event) {
	e.events.Emit(ev)
	if ev.Kind == report.Log && ev.Text == "started" {
		e.ch <- struct{}{}
	}
}

// TestEvalCancel: cancelling a chunk's context while it runs stops the
// chunk (a blocking builtin, a busy loop, a test run from the chunk) and
// leaves the session working.
func TestEvalCancel(t *testing.T) {
	f, err := Load("repl.star", []byte(replSrc+"\ndef test_sleeps():\n    print('started')\n    time.sleep(600)\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &started{ch: make(chan struct{}, 1)}
	s, err := f.Open(t.Context(), &machine.Boot{}, t.TempDir(), ev)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct{ src, wantErr string }{
		{src: "print('started')\ntime.sleep(600)\n", wantErr: "interrupted by Ctrl-C"},
		{src: "print('started')\nwhile True:\n    pass\n", wantErr: "interrupted by Ctrl-C"},
		// The test fails (its TestEnd says so) and the chunk stops.
		{src: "test_sleeps()", wantErr: "interrupted by Ctrl-C"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithCancelCause(t.Context())
		done := make(chan error, 1)
		var v starlark.Value
		go func() {
			var err error
			v, err = s.Eval(ctx, tt.src)
			done <- err
		}()
		select {
		case <-ev.ch:
		case err := <-done:
			t.Fatalf("Eval(%q) ended before it was cancelled: %v", tt.src, err)
		}
		cancel(errors.New("interrupted by Ctrl-C"))
		select {
		case err := <-done:
			if msg, _ := ErrorText(err); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("Eval(%q): got %v, %v; want the cancellation's cause", tt.src, v, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Eval(%q) still runs 10s after its context was cancelled", tt.src)
		}
		if v, err := s.Eval(t.Context(), "1 + 1"); err != nil || v != starlark.MakeInt(2) {
			t.Errorf("after cancelling %q: got %v, %v; want 2", tt.src, v, err)
		}
	}
	if ends := ev.find(report.TestEnd); len(ends) != 1 || ends[0].Passed || !strings.Contains(ends[0].Error, "interrupted by Ctrl-C") {
		t.Errorf("got test ends %+v, want test_sleeps failed by the interruption", ends)
	}
}

func TestCompletions(t *testing.T) {
	s, _ := openSession(t, replSrc)
	if _, err := s.Eval(t.Context(), "helpful = 1"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		word string
		want []string
	}{
		{"a.suc", []string{"a.succeed"}},
		{"a.wait_for_c", []string{"a.wait_for_closed_port", "a.wait_for_console_text"}},
		{"hel", []string{"help", "helper", "helpful"}},
		{"test_", []string{"test_fail", "test_pass"}},
		{"re.fu", []string{"re.fullmatch"}},
		{"LIMIT.x", nil},
		{"a.b.c", nil},
		{"nothing_like_this", nil},
	} {
		if got := s.Completions(tt.word); !slices.Equal(got, tt.want) {
			t.Errorf("Completions(%q): got %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestRunTestUnknown(t *testing.T) {
	s, _ := openSession(t, replSrc)
	err := s.RunTest(t.Context(), "test_nope")
	if err == nil || !strings.Contains(err.Error(), "its tests: test_pass, test_fail") {
		t.Errorf("got %v, want an error listing the tests", err)
	}
	if err := s.RunTest(t.Context(), "test_pass"); err != nil {
		t.Errorf("RunTest(test_pass): %v", err)
	}
}

// TestSessionKeepsMachines: a session's machine boots on first use from a
// chunk, keeps what a test did to it, boots again after start() in a
// chunk that returned at once, and stops at Close.
func TestSessionKeepsMachines(t *testing.T) {
	boot := vmtest.Boot(t)
	f, err := Load("keep.star", []byte("a = machine(vlans = [])\ndef test():\n    a.succeed('echo kept > /tmp/state')\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	s, err := f.Open(t.Context(), boot, t.TempDir(), ev)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	eval := func(src, want string) {
		t.Helper()
		v, err := s.Eval(t.Context(), src)
		if err != nil || v.String() != want {
			t.Fatalf("Eval(%q): got %v, %v; want %s", src, v, err, want)
		}
	}
	eval("a.succeed('uname -n')", `"a\n"`)
	if err := s.RunTest(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	eval("a.succeed('cat /tmp/state')", `"kept\n"`)
	eval("a.shutdown()", "None")
	eval("a.start()", "None") // returns at once; the boot goes on
	eval("a.succeed('echo again')", `"again\n"`)
	m := s.Lab().Machine("a")
	if m.QEMUPid() == 0 {
		t.Fatal("the machine is not up before Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if m.QEMUPid() != 0 {
		t.Error("the machine still runs after Close")
	}
	if boots := ev.find(report.Boot); len(boots) != 2 || boots[0].Test != "keep.repl" || boots[0].Error != "" {
		t.Errorf("got boots %+v, want two, under keep.repl", boots)
	}
	if logs := ev.find(report.ConsoleLog); len(logs) != 2 || logs[0].Test != "keep.test" {
		t.Errorf("got console-log events %+v, want one for the test and one at Close", logs)
	}
}
