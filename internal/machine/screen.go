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

// keyHoldMS is how long each key of a chord is held, in ms. QEMU queues
// key events in order, so keys sent one after another arrive in order;
// QEMU's default hold, 100 ms, made typing a 20-character line take 2 s.
const keyHoldMS = 10

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
// delay is a pause after QEMU took the key (NixOS's send_key delay); 0
// is none.
func (m *Machine) SendKey(ctx context.Context, name string, delay time.Duration) error {
	what := fmt.Sprintf("send key %q", name)
	chord, err := keys.Parse(name)
	if err != nil {
		return fmt.Errorf("%s: %w", m.cfg.Name, err)
	}
	q, err := m.monitor(ctx, what, true)
	if err != nil {
		return err
	}
	return m.sendChord(ctx, q, what, chord, delay)
}

// SendChars types text on the machine's keyboard, one key (or shifted
// key) per character, on a US layout. A character without a key is
// refused before anything is sent. Each key is taken by QEMU before the
// next is sent, and delay is a pause after each (NixOS's send_chars
// delay); 0 is none.
func (m *Machine) SendChars(ctx context.Context, text string, delay time.Duration) error {
	what := fmt.Sprintf("type %q", text)
	chords, err := keys.Chars(text)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	q, err := m.monitor(ctx, what, true)
	if err != nil {
		return err
	}
	for _, c := range chords {
		if err := m.sendChord(ctx, q, what, c, delay); err != nil {
			return err
		}
	}
	return nil
}

// sendChord sends one chord and waits for QEMU's answer, which comes once
// QEMU queued its key events, then pauses delay. Without a delay, chords
// follow each other as fast as QMP answers: QEMU plays each queued chord
// for keyHoldMS before the next, in order.
func (m *Machine) sendChord(ctx context.Context, q *qmp.Client, what string, c keys.Chord, delay time.Duration) error {
	args := map[string]any{"keys": c, "hold-time": keyHoldMS}
	if _, err := q.Execute(ctx, "send-key", args); err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, context.Cause(ctx))
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
