package script

import (
	"fmt"
	"os"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/attach"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/report"
)

// interactiveTerminal is the terminal shell_interact attaches: vmlab's own
// stdin, stdout and stderr (a var for tests).
var interactiveTerminal = func() (stdin, stdout, stderr *os.File) { return os.Stdin, os.Stdout, os.Stderr }

// shellInteract is shell_interact(): a login shell in the machine on
// vmlab's own terminal, until the user leaves it (exit, Ctrl-D). It is
// refused before the machine boots when vmlab has no terminal (CI). The
// shell's exit status does not fail the test: leaving it is the user's
// way to go on.
func shellInteract(c *call) (starlark.Value, error) {
	stdin, stdout, stderr := interactiveTerminal()
	if !pty.IsTerminal(stdin) {
		return nil, fmt.Errorf("%s: shell_interact needs a terminal; run vmlab with a terminal or use vmlab shell from another one", c.m.name)
	}
	if err := c.r.boot(c.m); err != nil {
		return nil, err
	}
	// The terminal report writes nothing while the shell has the
	// terminal: its live block would redraw over the shell's screen.
	at := report.Event{Kind: report.Attach, Test: c.r.testID(), Machine: c.m.name, Text: "shell"}
	c.r.rep.Emit(at)
	start := time.Now()
	defer func() {
		at.Kind, at.Time, at.Duration = report.Detach, time.Time{}, time.Since(start)
		c.r.rep.Emit(at)
	}()
	fmt.Fprintf(stderr, "vmlab: a shell in %s; exit or Ctrl-D goes back to the test\n", c.m.name)
	if _, err := attach.Run(c.r.ctx, stdin, stdout, stderr, nil, c.mm().Shell); err != nil {
		return nil, err
	}
	return starlark.None, nil
}
