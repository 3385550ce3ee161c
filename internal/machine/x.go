package machine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// X in the guest (docs/screens.md, "X"): the agent is a client of the
// guest's X server on display :0, the display NixOS's methods use, and
// waits on the server's events (internal/agent/x.go). Like the other
// screen methods they need a machine declared with a display.

// XDisplay is the X display the methods use.
const XDisplay = ":0"

// windowsReadTimeout bounds WindowNames (scaled 5x under TCG): a read
// takes milliseconds.
const windowsReadTimeout = 10 * time.Second

// needDisplay refuses an X method on a machine without a display.
func (m *Machine) needDisplay(what string) error {
	if !m.cfg.Display {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, ErrNoDisplay)
	}
	return nil
}

// WaitForX waits until the guest's X server on display :0 accepts a
// client (the agent connects, with the server's own cookie when it was
// started with -auth). Zero timeout means DefaultTimeout; a timeout is a
// *TimeoutError that shows why the last connection failed.
func (m *Machine) WaitForX(ctx context.Context, timeout time.Duration) error {
	what := "wait for the X server on " + XDisplay
	if err := m.needDisplay(what); err != nil {
		return err
	}
	res, err := m.wait(ctx, what, agentproto.Wait{Kind: agentproto.WaitX, Display: XDisplay, Timeout: timeout})
	if te := (*TimeoutError)(nil); errors.As(err, &te) && res.TimedOut {
		te.OutputName = "the last try"
	}
	return err
}

// WaitForWindow waits until a window on display :0 has a name (its
// _NET_WM_NAME, else its WM_NAME) that matches the regular expression. It
// waits for the X server first. The agent reads the names again each time
// the server reports a window created, mapped, renamed or destroyed, so it
// returns within milliseconds of the window's name being set. Zero timeout
// means DefaultTimeout; a timeout is a *TimeoutError that shows the names
// last read.
func (m *Machine) WaitForWindow(ctx context.Context, pattern string, timeout time.Duration) error {
	what := fmt.Sprintf("wait for a window matching %q on %s", pattern, XDisplay)
	if err := m.needDisplay(what); err != nil {
		return err
	}
	if _, err := regexp.Compile(pattern); err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	res, err := m.wait(ctx, what, agentproto.Wait{Kind: agentproto.WaitWindow, Display: XDisplay, Regex: pattern, Timeout: timeout})
	if te := (*TimeoutError)(nil); errors.As(err, &te) && res.TimedOut {
		te.OutputName = "the window names last read"
		if te.Output == "" {
			te.Output = "(no window has a name)\n"
		}
	}
	return err
}

// WindowNames returns the names of the windows on display :0, in the
// order of the window tree (xwininfo -root -tree's), windows without a
// name left out.
func (m *Machine) WindowNames(ctx context.Context) ([]string, error) {
	what := "read the window names on " + XDisplay
	if err := m.needDisplay(what); err != nil {
		return nil, err
	}
	agent, err := m.client(ctx, what)
	if err != nil {
		return nil, err
	}
	timeout := m.scale(windowsReadTimeout)
	hostCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := agent.XWindows(hostCtx, XDisplay)
	if err := m.outcome(ctx, hostCtx, what, timeout, res, "", err); err != nil {
		return nil, err
	}
	names := strings.Split(strings.TrimSuffix(res.Output, "\n"), "\n")
	if res.Output == "" {
		names = []string{}
	}
	return names, nil
}
