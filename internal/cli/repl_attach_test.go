package cli

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/report"
)

// TestReplEventsAttach: a shell_interact() typed at the REPL's prompt has
// the terminal to itself: a line that comes meanwhile (a console line
// with -v) is shown when the shell is left, not over it.
func TestReplEventsAttach(t *testing.T) {
	var out strings.Builder
	ev := newReplEvents(&out, true)
	ev.Emit(report.Event{Kind: report.Attach, Machine: "server", Text: "shell"})
	ev.Emit(report.Event{Kind: report.Console, Machine: "client", Text: "a console line"})
	if got := out.String(); got != "" {
		t.Errorf("while the shell has the terminal the REPL wrote %q", got)
	}
	ev.Emit(report.Event{Kind: report.Detach, Machine: "server", Text: "shell"})
	if got, want := out.String(), "client: a console line\n"; got != want {
		t.Errorf("after the shell: got %q, want %q", got, want)
	}
	ev.Emit(report.Event{Kind: report.Detach, Machine: "server"}) // unpaired: ignored
	ev.Emit(report.Event{Kind: report.Console, Machine: "client", Text: "next"})
	if got, want := out.String(), "client: a console line\nclient: next\n"; got != want {
		t.Errorf("after an unpaired detach: got %q, want %q", got, want)
	}
}

// TestReplEventsAttachBounded: what a chatty console prints while a shell
// has the terminal is held up to a bound, then counted (before: held
// without end, in the driver's memory).
func TestReplEventsAttachBounded(t *testing.T) {
	var out strings.Builder
	ev := newReplEvents(&out, true)
	ev.Emit(report.Event{Kind: report.Attach, Machine: "server", Text: "shell"})
	line := strings.Repeat("x", 1000)
	n := 3 * replHeldLimit / len(line)
	for range n {
		ev.Emit(report.Event{Kind: report.Console, Machine: "client", Text: line})
	}
	ev.mu.Lock()
	held := ev.heldBytes
	ev.mu.Unlock()
	if held > replHeldLimit {
		t.Errorf("held %d bytes while attached, want at most %d", held, replHeldLimit)
	}
	ev.Emit(report.Event{Kind: report.Detach, Machine: "server", Text: "shell"})
	if !strings.Contains(out.String(), "more lines came while the shell had the terminal") {
		t.Errorf("after the shell, the lines left out are not counted:\n%s", out.String()[max(0, out.Len()-200):])
	}
}

// TestReplEventsServiceExit: between tests the REPL says when a service
// exits (without -v too), and with -v shows a console line's boot
// parameter short.
func TestReplEventsServiceExit(t *testing.T) {
	var out strings.Builder
	ev := newReplEvents(&out, false)
	ev.Emit(report.Event{Kind: report.ServiceExit, Machine: "gui", Text: "service x exited with status 1", Stdout: "(EE) bad\n"})
	if got, want := out.String(), "gui: service x exited with status 1\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	ev = newReplEvents(&out, true)
	ev.Emit(report.Event{Kind: report.Console, Machine: "gui", Text: "Kernel command line: quiet vmlab=eyJob3N0bmFtZSI6Imd1aSJ9eyJob3N0"})
	if got, want := out.String(), "gui: Kernel command line: quiet vmlab=…\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
