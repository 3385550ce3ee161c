package machine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// The text of the guest's virtual terminals, read by the agent from the
// kernel's screen buffers (/dev/vcsaN, /dev/vcsuN): exact, no OCR, and
// there with or without a display (a machine without one has the kernel's
// dummy console, 80x25). See docs/screens.md, "TTY text".

// ttyReadTimeout bounds GetTTYText (scaled 5x under TCG).
const ttyReadTimeout = 10 * time.Second

// CheckTTY refuses a virtual terminal number outside 1..63 (tty1 is 1).
func CheckTTY(tty int) error {
	if tty < 1 || tty > agentproto.MaxVT {
		return fmt.Errorf("tty %d: no such virtual terminal: the guest has tty1 to tty%d", tty, agentproto.MaxVT)
	}
	return nil
}

// GetTTYText returns the text on virtual terminal tty (1 for tty1): a line
// per screen row, trailing blanks trimmed, each ending in a newline,
// trailing empty lines left out. A terminal nothing has opened yet is
// allocated, and blank.
func (m *Machine) GetTTYText(ctx context.Context, tty int) (string, error) {
	what := fmt.Sprintf("read the text of tty %d", tty)
	if err := CheckTTY(tty); err != nil {
		return "", fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	agent, err := m.client(ctx, what)
	if err != nil {
		return "", err
	}
	// A read takes milliseconds: only a guest that stopped answering
	// reaches the deadline.
	timeout := m.scale(ttyReadTimeout)
	hostCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := agent.TTYText(hostCtx, tty)
	if err := m.outcome(ctx, hostCtx, what, timeout, res, "", err); err != nil {
		return "", err
	}
	return res.Output, nil
}

// WaitUntilTTYMatches waits until the text of virtual terminal tty (as
// GetTTYText returns it) matches the regular expression, and returns that
// text. The agent reads the screen again each time the kernel says it
// changed, so it returns within milliseconds of the text appearing. Zero
// timeout means DefaultTimeout; a timeout is a *TimeoutError that shows
// the terminal's last text.
func (m *Machine) WaitUntilTTYMatches(ctx context.Context, tty int, pattern string, timeout time.Duration) (string, error) {
	what := fmt.Sprintf("wait until tty %d matches %q", tty, pattern)
	if err := CheckTTY(tty); err != nil {
		return "", fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	if _, err := regexp.Compile(pattern); err != nil {
		return "", fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	res, err := m.wait(ctx, what, agentproto.Wait{Kind: agentproto.WaitTTY, VT: tty, Regex: pattern, Timeout: timeout})
	if te := (*TimeoutError)(nil); errors.As(err, &te) && res.TimedOut {
		te.OutputName = fmt.Sprintf("tty %d's last text", tty)
	}
	if err != nil {
		return "", err
	}
	return res.Output, nil
}
