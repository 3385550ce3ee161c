package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// openQuiet opens a session of src on which nothing boots, its events
// shown as the REPL shows them on out.
func openQuiet(t *testing.T, src string, out *bytes.Buffer) (*script.Session, *replEvents) {
	t.Helper()
	f, err := script.Load("trial.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	events := newReplEvents(out, false)
	s, err := f.Open(t.Context(), &machine.Boot{}, t.TempDir(), events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, events
}

// TestCtrlCFailureWithoutConsole: a call the user cancelled with Ctrl-C
// says so in a line, without the machine's last console lines (which
// explain a timeout or a crash, not a Ctrl-C); what the command printed
// stays.
func TestCtrlCFailureWithoutConsole(t *testing.T) {
	var out bytes.Buffer
	s, _ := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	err := &machine.StoppedError{
		Machine: "a", What: `command "sleep 60"`, Cause: errCtrlC, Err: context.Canceled,
		Output: "half done", Console: []string{"[    2.2] virtio_net virtio6 eth1: renamed"},
	}
	printFailure(&out, s, err)
	got := out.String()
	if strings.Contains(got, "console") || strings.Contains(got, "virtio_net") {
		t.Errorf("a Ctrl-C shows the console:\n%s", got)
	}
	if !strings.Contains(got, `error: a: command "sleep 60": stopped: interrupted by Ctrl-C`) || !strings.Contains(got, "half done") {
		t.Errorf("got:\n%s\nwant the message and the command's output", got)
	}

	// A timeout keeps them.
	out.Reset()
	printFailure(&out, s, &machine.TimeoutError{Machine: "a", What: "unit web", Console: []string{"[    2.2] oops"}})
	if !strings.Contains(out.String(), "oops") {
		t.Errorf("a timeout lost its console lines:\n%s", out.String())
	}
}

// TestBootFailedLine: a failed boot is one line at the REPL (the call's
// error that follows has the details), and a boot cancelled by Ctrl-C
// says so.
func TestBootFailedLine(t *testing.T) {
	var out bytes.Buffer
	ev := newReplEvents(&out, false)
	ev.Emit(report.Event{Kind: report.Boot, Machine: "a", Error: "a: boot: stopped: interrupted by Ctrl-C\n--- last console lines ---\n[ 1.0] x"})
	if got, want := out.String(), "a: boot stopped by Ctrl-C\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	ev.Emit(report.Event{Kind: report.Boot, Machine: "a", Error: "a: boot: timed out after 1m0s\n--- last console lines ---\n[ 1.0] x"})
	if got, want := out.String(), "a: boot failed: a: boot: timed out after 1m0s\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestReplColor: the REPL's reports are coloured on a terminal unless
// NO_COLOR is set, as vmlab run's, and never have vmlab run's live block
// (the prompt owns the bottom of the screen).
func TestReplColor(t *testing.T) {
	ctl, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	if err := pty.SetSize(term, pty.Size{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	if opts := replTerminal(term, false); !opts.Color || opts.Progress {
		t.Errorf("on a terminal: got %+v, want colour and no block", opts)
	}
	t.Setenv("NO_COLOR", "1")
	if opts := replTerminal(term, true); opts.Color || opts.Progress || !opts.Verbose {
		t.Errorf("with NO_COLOR: got %+v, want no colour, verbose", opts)
	}
}

// promptReader is a lineReader whose ReadLine runs a function at the
// prompt (an event that comes while the user types), then ends.
type promptReader struct{ atPrompt func() }

func (p *promptReader) ReadLine(prompt string) (string, error) {
	p.atPrompt()
	return "", io.EOF
}
func (p *promptReader) AppendHistory(string) {}
func (p *promptReader) Close() error         { return nil }

// TestEventAtPrompt: a line shown while the editor waits at its prompt
// (a machine that went down) is written on a line of its own above a
// prompt drawn again, not after the prompt with none below it.
func TestEventAtPrompt(t *testing.T) {
	var out bytes.Buffer
	s, events := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	r := newREPL(&env{stdout: &out, stderr: &out}, s, events)
	r.in = &promptReader{atPrompt: func() {
		events.Emit(report.Event{Kind: report.Log, Machine: "a", Text: "went down: qemu exited: signal: killed"})
	}}
	r.editing = true
	r.loop(t.Context())
	if got, want := out.String(), "\r\x1b[Ka: went down: qemu exited: signal: killed\n>>> \n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	events.Emit(report.Event{Kind: report.Log, Machine: "a", Text: "went down"}) // no prompt: a plain line
	if got, want := out.String(), "a: went down\n"; got != want {
		t.Errorf("after the prompt: got %q, want %q", got, want)
	}
}

// TestDownHint: a call on a machine that went down says how to bring it
// back, by the name the REPL knows it by (the global's, not the
// declaration's).
func TestDownHint(t *testing.T) {
	var out bytes.Buffer
	s, _ := openQuiet(t, "web = machine(name = \"srv\")\ndef test():\n    pass\n", &out)
	printFailure(&out, s, &machine.DownError{Machine: "srv", What: `command "true"`, Cause: errors.New("qemu exited: signal: killed")})
	if want := "\n  srv is down: web.start() boots it again\n"; !strings.Contains(out.String(), want) {
		t.Errorf("got:\n%s\nwant it to contain %q", out.String(), want)
	}
}

// TestHistorySymlink: a history file that is a symlink is neither read
// nor written through (it could point anywhere: another user's file, one
// whose mode the REPL would change to 0600), and the REPL says so.
func TestHistorySymlink(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	target := filepath.Join(state, "precious")
	if err := os.WriteFile(target, []byte("1 + 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(state, "vmlab"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(state, "vmlab", "repl_history")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, _ := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	var stderr bytes.Buffer
	ed := newEditor(&env{stdout: &out, stderr: &stderr}, s)
	ed.AppendHistory("a.succeed('cat /secret')")
	ed.Close()
	b, err := os.ReadFile(target)
	fi, _ := os.Stat(target)
	if err != nil || string(b) != "1 + 1\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("the symlink's target: %v, %q, %v; want it untouched", err, b, fi.Mode())
	}
	if !strings.Contains(stderr.String(), "is a symlink") {
		t.Errorf("stderr: %q, want it to say why there is no history", stderr.String())
	}
}

// TestReplLeavesBootInFlight: Ctrl-D while a boot start() began is under
// way stops that boot rather than waiting for it, and says nothing of
// the machines as they go (no "up in" after the user left).
func TestReplLeavesBootInFlight(t *testing.T) {
	file := writeStar(t, "leave.star", replStar)
	sc := startScreen(t, t.TempDir(), "repl", file)
	expect(t, sc, `>>> `, 3*time.Minute)
	sc.Type("a.start()\r")
	expect(t, sc, `a: booting\r\n`, time.Minute)
	expect(t, sc, `>>> `, 10*time.Second)
	qemu := childPids(sc.Cmd.Process.Pid)
	sc.Type("\x04")
	if err := sc.Wait(); err != nil {
		t.Errorf("vmlab repl after Ctrl-D: %v, want exit 0", err)
	}
	_, after, _ := strings.Cut(sc.Text(), "a: booting")
	if strings.Contains(after, "a: up in") || strings.Contains(after, "boot") {
		t.Errorf("after Ctrl-D the REPL waited for the boot or spoke of it:\n%s", after)
	}
	for _, pid := range qemu {
		if !gone(pid, 10*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("qemu (pid %d) outlived the REPL", pid)
		}
	}
}

// TestReplPlainLineNumbers: with a script piped in, an error names the
// line of the input it is on, not the line of its chunk.
func TestReplPlainLineNumbers(t *testing.T) {
	var out bytes.Buffer
	s, events := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	in := "x = 1\ndef f():\n    return 2\n\ny = undefined_name\nf(\n"
	e := &env{stdin: strings.NewReader(in), stdout: &out, stderr: &out}
	newREPL(e, s, events).run(t.Context())
	for _, want := range []string{"error: <repl>:5:5: undefined: undefined_name", "error: <repl>:7:1: got end of file, want ')'"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got:\n%s\nwant it to contain %q", out.String(), want)
		}
	}
}

// TestReplExit: exit() leaves the REPL as Ctrl-D does, and is no failure.
func TestReplExit(t *testing.T) {
	var out bytes.Buffer
	s, events := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	e := &env{stdin: strings.NewReader("print('before')\nexit()\nprint('after')\n"), stdout: &out, stderr: &out}
	failed := newREPL(e, s, events).run(t.Context())
	if out.String() != "before\n" || failed {
		t.Errorf("got %q, failed %v; want \"before\\n\" and no failure", out.String(), failed)
	}
}

// TestReplEventsClean: what a guest printed reaches the terminal as the
// terminal report writes it, without escape sequences (a title, colours,
// a clipboard write), each line with its machine's name; print("") is an
// empty line.
func TestReplEventsClean(t *testing.T) {
	var out bytes.Buffer
	ev := newReplEvents(&out, true)
	ev.Emit(report.Event{Kind: report.Log, Text: "\x1b]2;HACKED\x07\x1b[31mred\x1b[0m\nsecond"})
	ev.Emit(report.Event{Kind: report.Log, Text: ""})
	ev.Emit(report.Event{Kind: report.Log, Machine: "a", Text: "one\ntwo"})
	ev.Emit(report.Event{Kind: report.Console, Machine: "a", Text: "\x1b]52;c;cGF3bmVk\x07boot"})
	ev.Emit(report.Event{Kind: report.Command, Machine: "a", Command: "printf '\x1b[2J'\nmore", Exit: 0})
	want := "red\nsecond\n\na: one\na: two\na: boot\na: $ printf '' ... (exit 0, 0s)\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// TestFailureClean: a failure's text carries the guest's output (a
// command's stdout and stderr): it is cleaned of escape sequences too.
func TestFailureClean(t *testing.T) {
	var out bytes.Buffer
	s, _ := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	printFailure(&out, s, &machine.ExitError{Machine: "a", Command: "f", Status: 1, WantSuccess: true, Stdout: "\x1b]2;HACKED\x07out\n"})
	if strings.ContainsAny(out.String(), "\x1b\x07") || !strings.Contains(out.String(), "\nout\n") {
		t.Errorf("got %q, want the output without its escapes", out.String())
	}
}

// TestHistoryTwoREPLs: two REPLs open at once both keep what was typed
// in them: the one that ends last adds its lines to the file as the
// other left it, rather than writing over them.
func TestHistoryTwoREPLs(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	history := filepath.Join(state, "vmlab", "repl_history")
	os.Mkdir(filepath.Dir(history), 0o700)
	if err := os.WriteFile(history, []byte("from before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s, _ := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	e := &env{stdout: &out, stderr: &out}
	first, second := newEditor(e, s), newEditor(e, s)
	first.AppendHistory("typed in the first")
	second.AppendHistory("typed in the second")
	first.Close()
	second.Close()
	third := newEditor(e, s)
	third.AppendHistory("typed in the third")
	third.Close()
	b, err := os.ReadFile(history)
	if want := "from before\ntyped in the first\ntyped in the second\ntyped in the third\n"; err != nil || string(b) != want {
		t.Errorf("history: got %q, %v; want %q", b, err, want)
	}
	if fi, err := os.Stat(history); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("history: %v, %v; want mode 0600", fi.Mode(), err)
	}
	if out.Len() > 0 {
		t.Errorf("the REPLs said %q", out.String())
	}
}

// TestReplPlainBlankInBlock: a script piped in whose functions have blank
// lines in their bodies runs as a file would (at a prompt a blank line
// ends a block, as in Python's).
func TestReplPlainBlankInBlock(t *testing.T) {
	var out bytes.Buffer
	s, events := openQuiet(t, "a = machine()\ndef test():\n    pass\n", &out)
	in := "def f():\n    x = 1\n\n    # why\n\n    return x + 1\n\nf()\n"
	e := &env{stdin: strings.NewReader(in), stdout: &out, stderr: &out}
	if failed := newREPL(e, s, events).run(t.Context()); failed || out.String() != "2\n" {
		t.Errorf("got %q (failed %v), want \"2\\n\"", out.String(), failed)
	}
}

// emitted records events.
type emitted []report.Event

func (e *emitted) Emit(ev report.Event) { *e = append(*e, ev) }

// TestSwitchEmitterKeepsRunReports: under vmlab run -i, the run's reports
// hold the tests as they ran: what the session does outside a test (its
// label's events: a boot the REPL began) does not reach them, though the
// REPL sees it while it runs; but the stopping of the machines the test
// left up (Stop, last console lines) is the test's, as without -i.
// Before, the test's Stop events were dropped too.
func TestSwitchEmitterKeepsRunReports(t *testing.T) {
	var run, repl emitted
	sw := newSwitchEmitter(&run, "f.repl", "f.test_x")
	sw.Emit(report.Event{Kind: report.Boot, Test: "f.test_x", Machine: "a"})
	sw.Emit(report.Event{Kind: report.Boot, Test: "f.repl", Machine: "a"})
	sw.stopping(map[string]bool{"a": true})
	sw.set(&repl)
	sw.Emit(report.Event{Kind: report.Boot, Test: "f.repl", Machine: "b"})
	sw.set(&run)
	sw.Emit(report.Event{Kind: report.Boot, Test: "f.repl", Machine: "a", Error: "the REPL ended"})
	sw.Emit(report.Event{Kind: report.Stop, Test: "f.repl", Machine: "a"})
	sw.Emit(report.Event{Kind: report.Console, Test: "f.repl", Machine: "a", Text: "reboot: Power down"})
	sw.Emit(report.Event{Kind: report.Stop, Test: "f.repl", Machine: "b"}) // the REPL booted it
	sw.Emit(report.Event{Kind: report.ConsoleLog, Test: "f.repl", Machine: "a"})
	var got []string
	for _, e := range run {
		got = append(got, fmt.Sprintf("%s %s %s", e.Kind, e.Test, e.Machine))
	}
	want := []string{"boot f.test_x a", "stop f.test_x a", "console f.test_x a"}
	if !slices.Equal(got, want) {
		t.Errorf("the run's reports got %q, want %q", got, want)
	}
	if len(repl) != 1 {
		t.Errorf("the REPL got %+v, want its event", repl)
	}
}

// sinkEvents records what a sink got.
type sinkEvents []report.Event

func (s *sinkEvents) Event(e report.Event) { *s = append(*s, e) }
func (s *sinkEvents) Close() error         { return nil }

// TestEndHold: the report files behind an endHold get a held test's
// console logs, captures and end after what came meanwhile (its machines
// stopping), the end last; other tests' events pass at once.
func TestEndHold(t *testing.T) {
	var files sinkEvents
	h := newEndHold(&files)
	h.hold("f.test_x")
	for _, e := range []report.Event{
		{Kind: report.Command, Test: "f.test_x", Machine: "a"},
		{Kind: report.ConsoleLog, Test: "f.test_x", Machine: "a"},
		{Kind: report.Capture, Test: "f.test_x"},
		{Kind: report.TestEnd, Test: "f.test_x"},
		{Kind: report.Stop, Test: "f.test_x", Machine: "a"},
		{Kind: report.Console, Test: "f.test_x", Machine: "a"},
	} {
		h.Event(e)
	}
	h.release("f.test_y") // not the one held
	h.release("f.test_x")
	h.Event(report.Event{Kind: report.TestEnd, Test: "f.test_x"}) // no longer held
	var got []string
	for _, e := range files {
		got = append(got, string(e.Kind))
	}
	want := []string{"command", "stop", "console", "console-log", "capture", "test-end", "test-end"}
	if !slices.Equal(got, want) {
		t.Errorf("the files got %q, want %q", got, want)
	}
}

// TestReplOneFile: vmlab repl with no file or several says it takes one
// before its usage, and boots nothing.
func TestReplOneFile(t *testing.T) {
	for _, args := range [][]string{nil, {"testdata/pass.star", "testdata/pass.star"}} {
		var stdout, stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
		code := runRepl(t.Context(), e, args)
		if code != exitUsage || !strings.HasPrefix(stderr.String(), "vmlab: repl takes one file.star") {
			t.Errorf("vmlab repl %q: got exit %d, %q; want %d and what it takes", args, code, stderr.String(), exitUsage)
		}
	}
}
