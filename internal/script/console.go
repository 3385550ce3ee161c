package script

import (
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/attach"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/report"
)

// consoleInteract is console_interact(): vmlab's own terminal attached to
// the machine's serial console (what the guest prints on ttyS0, and keys
// typed to it), as `vmlab console` attaches one to a lab that is up,
// until the user leaves with Ctrl-] then q. Like shell_interact, it is
// refused before the machine boots when vmlab has no terminal.
func consoleInteract(c *call) (starlark.Value, error) {
	stdin, stdout, stderr := interactiveTerminal()
	if !pty.IsTerminal(stdin) {
		return nil, fmt.Errorf("%s: console_interact needs a terminal; run vmlab with a terminal, or use vmlab console from another one on a lab that is up", c.m.name)
	}
	if err := c.r.boot(c.m); err != nil {
		return nil, err
	}
	// The terminal report writes nothing while the console has the
	// terminal, as for shell_interact.
	at := report.Event{Kind: report.Attach, Test: c.r.testID(), Machine: c.m.name, Text: "console"}
	c.r.rep.Emit(at)
	start := time.Now()
	defer func() {
		at.Kind, at.Time, at.Duration = report.Detach, time.Time{}, time.Since(start)
		c.r.rep.Emit(at)
	}()
	fmt.Fprintf(stderr, "vmlab: the serial console of %s; Ctrl-] then q goes back to the test\r\n", c.m.name)
	m := c.mm()
	if err := attach.Console(c.r.ctx, stdin, stdout, m.SubscribeConsole(), m.WriteConsole); err != nil {
		return nil, fmt.Errorf("%s: console_interact: %w", c.m.name, err)
	}
	fmt.Fprintf(stderr, "\r\nvmlab: left the serial console of %s\n", c.m.name)
	return starlark.None, nil
}
