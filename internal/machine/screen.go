package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/keys"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// The screen and keyboard of a machine with a display (spec.Machine's
// Display): screenshots and keys go through QMP, as the NixOS driver's do
// through QEMU's monitor. Each method boots the machine if needed.

// ErrNoDisplay is wrapped by the error of a screen method called on a
// machine declared without a display.
var ErrNoDisplay = errors.New("the machine has no display: declare it with display = True")

// How typing works: each key's events go to QEMU with QMP's
// input-send-event, which hands them to the emulated keyboard at once,
// and vmlab keeps the time between them. QEMU's send-key is not used: it
// queues events in QEMU with a timer for each, keys sent faster than the
// timers play them pile up in a queue of 1024 entries (a plain key takes
// 6, a shifted one 12), and what does not fit is dropped without an error
// (TestVMTypingUnderLoad; docs/screens.md).

// keyHold is how long each key of a chord is held down before its
// release: QEMU's own default for send-key.
const keyHold = 10 * time.Millisecond

// monitor returns the QMP client of the running machine, booting it if
// needed; display says the call needs the machine's display.
func (m *Machine) monitor(ctx context.Context, what string, display bool) (*qmp.Client, error) {
	if display && !m.cfg.Display {
		return nil, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, ErrNoDisplay)
	}
	if _, err := m.client(ctx, what); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.qmp, nil
}

// Screenshot returns a PNG of the machine's display, as QEMU's screendump
// takes it: the emulated card's frame buffer, whatever the guest shows.
func (m *Machine) Screenshot(ctx context.Context) ([]byte, error) {
	const what = "take a screenshot"
	q, err := m.monitor(ctx, what, true)
	if err != nil {
		return nil, err
	}
	// QEMU writes the file itself: into the machine's directory, which it
	// sees whatever its view of the host.
	f, err := os.CreateTemp(m.dir, "screendump-*.png")
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	if _, err := q.Execute(ctx, "screendump", map[string]string{"filename": path, "format": "png"}); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return png, nil
}

// SendKey presses the keys of name together and releases them: a NixOS
// key name such as "ctrl-alt-delete", "ret", "shift-0x0c" or one
// character ("A"). An unknown name is refused before anything is sent.
// Each key is held keyHold, and delay is the pause after the release
// (NixOS's send_key delay); 0 is none. It returns once the guest's
// keyboard driver has the key (see typeChords).
func (m *Machine) SendKey(ctx context.Context, name string, delay time.Duration) error {
	what := fmt.Sprintf("send key %q", name)
	chord, err := keys.Parse(name)
	if err != nil {
		return fmt.Errorf("%s: %w", m.cfg.Name, err)
	}
	return m.typeChords(ctx, what, []keys.Chord{chord}, delay)
}

// SendChars types text on the machine's keyboard, one key (or shifted
// key) per character, on a US layout. A character without a key is
// refused before anything is sent. Each key is pressed, held keyHold and
// released before the next, and delay is the pause after each (NixOS's
// send_chars delay); 0 is none. It returns once the guest's keyboard
// driver has every key (see typeChords).
func (m *Machine) SendChars(ctx context.Context, text string, delay time.Duration) error {
	what := fmt.Sprintf("type %q", text)
	chords, err := keys.Chars(text)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return m.typeChords(ctx, what, chords, delay)
}

// keyEvent is one event of QMP's input-send-event: a key going down or
// up.
type keyEvent struct {
	Type string       `json:"type"` // "key"
	Data keyEventData `json:"data"`
}

type keyEventData struct {
	Down bool     `json:"down"`
	Key  keys.Key `json:"key"`
}

// releaseTimeout bounds the release of a chord whose context ended while
// its keys were down.
const releaseTimeout = 5 * time.Second

// sendChord presses the keys of c in order, holds them keyHold, releases
// them in the reverse order and pauses delay. QEMU hands each batch of
// events to the keyboard when it answers, so nothing waits in QEMU. Keys
// pressed are released even when ctx ends while they are down; a machine
// that went down while they were (QEMU closed QMP) took them.
func (m *Machine) sendChord(ctx context.Context, q *qmp.Client, what string, c keys.Chord, delay time.Duration) error {
	down := make([]keyEvent, 0, len(c))
	up := make([]keyEvent, 0, len(c))
	for i, k := range c {
		down = append(down, keyEvent{Type: "key", Data: keyEventData{Down: true, Key: k}})
		up = append(up, keyEvent{Type: "key", Data: keyEventData{Down: false, Key: c[len(c)-1-i]}})
	}
	if _, err := q.Execute(ctx, "input-send-event", map[string]any{"events": down}); err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	held := pause(ctx, keyHold)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_, err := q.Execute(rctx, "input-send-event", map[string]any{"events": up})
	switch {
	case err != nil && held == nil && vmStopped(rctx, q, err):
		// The machine stopped, or QEMU went away, with the keys down:
		// they were taken, and ended it (ctrl-alt-delete without an
		// init that handles it resets the machine, and QEMU runs with
		// -no-reboot: it refuses input before it exits).
		return nil
	case err != nil:
		return fmt.Errorf("%s: %s: release the keys: %w", m.cfg.Name, what, err)
	}
	if held == nil {
		held = pause(ctx, delay)
	}
	if held != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, held)
	}
	return nil
}

// vmStopped tells whether err, the failure of a QMP command, came from a
// machine that no longer runs: QEMU closed the connection, or it answers
// that the machine is not running (it stopped, shut down or panicked).
func vmStopped(ctx context.Context, q *qmp.Client, err error) bool {
	if errors.Is(err, qmp.ErrClosed) {
		return true
	}
	var qerr *qmp.Error
	if !errors.As(err, &qerr) {
		return false
	}
	raw, err := q.Execute(ctx, "query-status", nil)
	if errors.Is(err, qmp.ErrClosed) {
		return true
	}
	var st struct {
		Running bool `json:"running"`
	}
	return err == nil && json.Unmarshal(raw, &st) == nil && !st.Running
}

// pause waits d, or until ctx ends (its cause).
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// SendMonitorCommand runs command in QEMU's human monitor and returns
// what it printed. It needs no display.
func (m *Machine) SendMonitorCommand(ctx context.Context, command string) (string, error) {
	what := fmt.Sprintf("run monitor command %q", command)
	q, err := m.monitor(ctx, what, false)
	if err != nil {
		return "", err
	}
	raw, err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": command})
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("%s: %s: read the reply: %w", m.cfg.Name, what, err)
	}
	return strings.ReplaceAll(out, "\r\n", "\n"), nil
}

// SendConsole writes chars to the guest's serial console (its ttyS0), as
// someone typing on it, booting the machine if needed. It needs no
// display.
func (m *Machine) SendConsole(ctx context.Context, chars string) error {
	if _, err := m.client(ctx, "write to the serial console"); err != nil {
		return err
	}
	_, err := m.WriteConsole([]byte(chars))
	return err
}
