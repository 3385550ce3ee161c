package machine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/keys"
)

// Typing with the guest's acknowledgements. The emulated PS/2 keyboard
// holds 16 bytes the guest has not read yet (QEMU's hw/input/ps2.c, as
// the PS/2 protocol has it) and drops any byte past them without a word.
// Under TCG on a loaded host the guest's CPU can go 160 ms without
// running, long enough for keys sent one per 10 ms to fill it: measured,
// 3 to 9 characters of 400 lost with six busy processes on two cores
// (TestVMTypingUnderLoad). So vmlab keeps at most keyWindow key events
// between what it sent and what the guest's keyboard driver delivered,
// as the agent counts them from the keyboard's evdev device (WaitKeys):
// whatever the load, the queue cannot overflow. Each event is one byte
// (two for the keys with an 0xe0 prefix: arrows, right ctrl, ...), so the
// window holds at most 12 of the 16.

// keyWindow is how many key events (a press or a release each) may be
// sent that the guest has not delivered yet. A chord of more keys than
// that is sent whole once nothing is outstanding.
const keyWindow = 6

// keyAckTimeout bounds a wait for the guest to deliver keys (scaled by
// the accelerator). A key the guest's driver does not know (some raw
// scancodes) is never counted: after this wait the host counts it as
// delivered and goes on, and says so in the log.
const keyAckTimeout = time.Second

// keyWaiter is the agent's side of the account: agentclient.Client.
type keyWaiter interface {
	Wait(ctx context.Context, w agentproto.Wait) (agentproto.Result, error)
}

// keyFlow is one typing call's account of key events.
type keyFlow struct {
	m     *Machine
	agent keyWaiter
	what  string
	base  int64 // the guest's count when the call began
	sent  int64 // events sent by this call
	// acked is how many of those the host counts as delivered: the
	// guest's count since base, or more after a wait that timed out
	// (forgiven events, never counted again when the guest delivers
	// them late).
	acked int64
	off   bool // the guest cannot count: send without acknowledgements
}

// typeChords types chords in order on the machine's keyboard, each held
// keyHold and followed by delay, never more than keyWindow key events
// ahead of the guest, and returns once the guest has delivered them all
// (or went down: ctrl-alt-delete resets a fast-mode machine at once).
func (m *Machine) typeChords(ctx context.Context, what string, chords []keys.Chord, delay time.Duration) error {
	q, err := m.monitor(ctx, what, true)
	if err != nil {
		return err
	}
	agent, err := m.client(ctx, what)
	if err != nil {
		return err
	}
	f := &keyFlow{m: m, agent: agent, what: what}
	n, err := f.count(ctx, 0)
	switch {
	case err != nil && strings.Contains(err.Error(), agentproto.NoKeyCount):
		m.logf("%s: without the guest's acknowledgements: %v", what, err)
		f.off = true
	case err != nil:
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	f.base = n
	for _, c := range chords {
		if err := f.before(ctx, len(c)); err != nil {
			return err
		}
		if err := m.sendChord(ctx, q, what, c, delay); err != nil {
			return err
		}
		f.sent += int64(2 * len(c))
	}
	return f.await(ctx, f.sent)
}

// before waits until a chord of n keys (2n events) can be sent: until
// at most keyWindow events would be outstanding with it, or none are.
func (f *keyFlow) before(ctx context.Context, n int) error {
	return f.await(ctx, min(f.sent, f.sent+int64(2*n)-keyWindow))
}

// await returns once the guest delivered at least want of the call's
// events. The guest going down ends the wait without an error when the
// keys are all sent (want is sent): they were taken.
func (f *keyFlow) await(ctx context.Context, want int64) error {
	if f.off || f.acked >= want {
		return nil
	}
	n, err := f.count(ctx, f.base+want)
	switch {
	case err == nil:
		f.acked = max(f.acked, n-f.base)
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %s: %w", f.m.cfg.Name, f.what, context.Cause(ctx))
	case errors.Is(err, errKeysLate):
		got := max(n-f.base, f.acked)
		f.m.logf("%s: the guest delivered %d of %d key events within %v: going on as if it had them all (a key its driver does not know is not counted)",
			f.what, got, want, f.m.scale(keyAckTimeout))
		// Forgiven once: the base stays, so events that were only
		// late count when they arrive, not on top of the forgiven ones
		// (which would widen the window by as many for the rest of
		// the call). A key the driver never counts narrows it instead.
		f.acked = want
		return nil
	case want == f.sent:
		return nil
	}
	return fmt.Errorf("%s: %s: wait for the guest's keyboard: %w", f.m.cfg.Name, f.what, err)
}

// errKeysLate is the error of a count that did not reach its target in
// time.
var errKeysLate = errors.New("the guest did not deliver the keys in time")

// count returns the guest's count of key events once it is at least want.
func (f *keyFlow) count(ctx context.Context, want int64) (int64, error) {
	timeout := f.m.scale(keyAckTimeout)
	hostCtx, cancel := f.m.hostDeadline(ctx, timeout)
	defer cancel()
	res, err := f.agent.Wait(hostCtx, agentproto.Wait{Kind: agentproto.WaitKeys, Keys: want, Timeout: timeout})
	if err == nil && res.Error != "" {
		err = fmt.Errorf("%s", res.Error)
	}
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(res.Output, 10, 64)
	if perr != nil {
		return 0, fmt.Errorf("the agent's key count %q: %w", res.Output, perr)
	}
	if res.TimedOut {
		return n, errKeysLate
	}
	return n, nil
}
