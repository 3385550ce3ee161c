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
