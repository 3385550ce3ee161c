package report

import (
	"strings"
	"testing"
	"time"
)

// pendingTimers counts the live terminal's timers that have not fired.
func (lt *liveTerm) pendingTimers() int {
	n := 0
	for _, ft := range lt.timers {
		if ft.pending {
			n++
		}
	}
	return n
}

// TestAttachSuspendsBlock: while a shell in a machine has the terminal
// (shell_interact), the block is off the screen, its clock stopped and
// nothing is written over the shell; the lines that came meanwhile and the
// block come back at the Detach, under the shell's screen.
func TestAttachSuspendsBlock(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Width: 80, Verbose: true})
	lt.emit(0, Event{Kind: TestStart})
	lt.emit(0, Event{Kind: BootStart, Machine: "server"})
	lt.emit(1, Event{Kind: Boot, Machine: "server", Duration: time.Second})
	lt.emit(1, Event{Kind: CommandStart, Machine: "server", Command: "shell_interact()"})
	lt.wantBlock("before", "  server: booted in 1.00s", "server  up 0.0s        $ shell_interact() 0.0s")

	lt.emit(2, Event{Kind: Attach, Machine: "server", Text: "shell"})
	if got := lt.vt.String(); strings.Contains(got, "server  up") {
		t.Errorf("the block is on the screen while attached:\n%s", got)
	}
	if n := lt.pendingTimers(); n != 0 {
		t.Errorf("got %d clock ticks pending while attached, want 0", n)
	}
	shell := "vmlab: a shell in server; exit or Ctrl-D goes back to the test\r\n# uname -n\r\nserver\r\n# "
	lt.vt.Write([]byte(shell)) // what the shell shows
	writes := lt.writes
	lt.emit(3, Event{Kind: Console, Machine: "server", Text: "a console line"})
	lt.emit(4, Event{Kind: BootStart, Machine: "client"})
	lt.emit(5, Event{Kind: TestStart, Test: "other"}) // held: t is live
	if lt.writes != writes {
		t.Errorf("the terminal report wrote %d times over the shell", lt.writes-writes)
	}
	if n := lt.pendingTimers(); n != 0 {
		t.Errorf("got %d clock ticks pending while attached, want 0", n)
	}

	lt.vt.Write([]byte("exit\r\n")) // Ctrl-D: the shell leaves
	lt.emit(9, Event{Kind: Detach, Machine: "server", Text: "shell", Duration: 7 * time.Second})
	lt.vt.check(t)
	got := lt.vt.String()
	if !strings.Contains(got, "# uname -n\nserver\n# exit\n") {
		t.Errorf("the shell's screen is gone after the Detach:\n%s", got)
	}
	lt.wantBlock("after",
		"# exit",
		"  server: a console line",
		"  client: booting",
		"server  up 8.0s        $ shell_interact() 8.0s",
		"client  booting 5.0s")
	if n := lt.pendingTimers(); n != 1 {
		t.Errorf("got %d clock ticks pending after the Detach, want 1", n)
	}
	if err := lt.sink.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAttachPlainLog: in a plain log the step that attached a terminal is
// not said to be "still running" (a person is at it), lines that came
// meanwhile are written after the Detach, and a Detach that never came
// does not keep the summary from being written.
func TestAttachPlainLog(t *testing.T) {
	var timers []*fakeTimer
	var out strings.Builder
	sink := NewTerminal(&out, TerminalOptions{})
	sink.(*terminal).after = func(d time.Duration, f func()) func() bool {
		ft := &fakeTimer{d: d, f: f, pending: true}
		timers = append(timers, ft)
		return func() bool { was := ft.pending; ft.pending = false; return was }
	}
	sink.Event(Event{Kind: TestStart, Test: "t"})
	sink.Event(Event{Kind: CommandStart, Test: "t", Machine: "server", Command: "shell_interact()"})
	sink.Event(Event{Kind: Attach, Test: "t", Machine: "server"})
	for _, ft := range timers {
		if ft.pending {
			t.Errorf("a long-step watch is pending while attached (due after %v)", ft.d)
		}
	}
	before := out.Len()
	sink.Event(Event{Kind: Log, Test: "t", Text: "meanwhile"})
	if out.Len() != before {
		t.Errorf("the terminal report wrote %q while attached", out.String()[before:])
	}
	sink.Event(Event{Kind: Attach, Test: "", Machine: "client"}) // nested: a REPL line's
	sink.Event(Event{Kind: Detach, Test: "", Machine: "client"})
	if out.Len() != before {
		t.Errorf("the terminal report wrote %q while the outer terminal is attached", out.String()[before:])
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want := "RUN  t\n  meanwhile\nFAIL t (did not finish)\n0 passed, 1 failed\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
