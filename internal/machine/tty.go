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

// GetTTYText returns the text on virtual terminal tty (1 for tty1), as
// NixOS's driver reads it: every screen row at the terminal's full width,
// trailing blanks kept, rows joined by newlines (none after the last). A
// terminal nothing has opened yet is allocated, and blank: its rows are
// all blanks.
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
		te.Output = shownTTYText(res.Output)
	}
	if err != nil {
		return "", err
	}
	return res.Output, nil
}

// shownTTYText is a terminal's text as a timeout error shows it: each row
// without its trailing blanks, the blank rows at the bottom left out, and
// a blank terminal said to be blank (an empty section would not be shown
// at all, and a screen of blanks shows nothing).
func shownTTYText(text string) string {
	rows := strings.Split(text, "\n")
	for i, row := range rows {
		rows[i] = strings.TrimRight(row, " ")
	}
	shown := strings.TrimRight(strings.Join(rows, "\n"), "\n")
	if shown == "" {
		return "(blank: nothing is written on the terminal)"
	}
	return shown
}
