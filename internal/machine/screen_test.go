package machine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestScreenMethods drives the screen methods against the fake QEMU: what
// each sends over QMP, and what it returns.
func TestScreenMethods(t *testing.T) {
	dir := t.TempDir()
	m := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Display: true}, Dir: dir})
	ctx := t.Context()
	png, err := m.Screenshot(ctx)
	if err != nil || string(png) != "\x89PNG fake" {
		t.Fatalf("Screenshot: got %q, %v; want the fake's PNG", png, err)
	}
	if err := m.SendKey(ctx, "ctrl-alt-delete", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.SendChars(ctx, "A\n", 0); err != nil {
		t.Fatal(err)
	}
	out, err := m.SendMonitorCommand(ctx, "info status")
	if err != nil || out != "fake: info status\n" {
		t.Errorf("SendMonitorCommand: got %q, %v; want \"fake: info status\\n\"", out, err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "fake-qmp.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	key := func(down bool, names ...string) string {
		var ev []string
		for _, n := range names {
			ev = append(ev, fmt.Sprintf(`{"type":"key","data":{"down":%v,"key":{"type":"qcode","data":%q}}}`, down, n))
		}
		return `input-send-event {"events":[` + strings.Join(ev, ",") + `]}`
	}
	// Each chord's keys go down in order and up in the reverse order.
	want := []string{
		key(true, "ctrl", "alt", "delete"), key(false, "delete", "alt", "ctrl"),
		key(true, "shift", "a"), key(false, "a", "shift"),
		key(true, "ret"), key(false, "ret"),
		`human-monitor-command {"command-line":"info status"}`,
	}
	if len(lines) != len(want)+1 || !strings.HasPrefix(lines[0], `screendump {"filename":"`+dir) || !strings.HasSuffix(lines[0], `","format":"png"}`) {
		t.Fatalf("got QMP commands\n%s\nwant a screendump to a PNG in %s, then\n%s", log, dir, strings.Join(want, "\n"))
	}
	for i, w := range want {
		if lines[i+1] != w {
			t.Errorf("command %d: got %s, want %s", i+1, lines[i+1], w)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "screendump-*")); len(left) > 0 {
		t.Errorf("got %v left in the machine's directory, want the screendump removed", left)
	}
}

// TestScreenRefusals: a screen method on a machine without a display, an
// unknown key and a character without a key are refused before anything
// boots or is sent.
func TestScreenRefusals(t *testing.T) {
	plain := fakeMachine(t, "serve")
	ctx := t.Context()
	if _, err := plain.Screenshot(ctx); !errors.Is(err, machine.ErrNoDisplay) {
		t.Errorf("Screenshot without a display: got %v, want ErrNoDisplay", err)
	}
	if err := plain.SendChars(ctx, "ls\n", 0); !errors.Is(err, machine.ErrNoDisplay) {
		t.Errorf("SendChars without a display: got %v, want ErrNoDisplay", err)
	}
	screen := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Display: true}})
	if err := screen.SendKey(ctx, "ctrl-alt-delet", 0); err == nil || !strings.Contains(err.Error(), "did you mean delete?") {
		t.Errorf("SendKey of a misspelled key: got %v, want it to offer delete", err)
	}
	if err := screen.SendChars(ctx, "naïve", 0); err == nil || !strings.Contains(err.Error(), `'ï'`) {
		t.Errorf("SendChars of a character without a key: got %v, want it to name 'ï'", err)
	}
	for name, m := range map[string]*machine.Machine{"plain": plain, "screen": screen} {
		if !m.NeedsBoot() {
			t.Errorf("machine %s booted for a refused call", name)
		}
	}
}

// TestSendCharsDelay: each key goes down, is held keyHold (10 ms) and
// released, and the next goes down after the delay; without a delay the
// keys go with the hold only, and a delay is cut short by the context.
func TestSendCharsDelay(t *testing.T) {
	const delay = 60 * time.Millisecond
	dir := t.TempDir()
	m := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Display: true}, Dir: dir})
	ctx := t.Context()
	if err := m.SendChars(ctx, "ab", delay); err != nil {
		t.Fatal(err)
	}
	if err := m.SendKey(ctx, "ret", delay); err != nil {
		t.Fatal(err)
	}
	// Without a delay there is no pause to measure; how fast it went is
	// the bench's to say, not a wall-clock bound that a loaded host breaks.
	if err := m.SendChars(ctx, "cd", 0); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "fake-qmp.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Each key's press and release, the press first, in order.
	var keys []string
	var downs []bool
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		keys = append(keys, l[strings.LastIndex(l, `"data":"`)+8:strings.LastIndex(l, `"}`)])
		downs = append(downs, strings.Contains(l, `"down":true`))
	}
	if got, want := strings.Join(keys, " "), "a a b b ret ret c c d d"; got != want {
		t.Fatalf("got key events %q in that order, want %q", got, want)
	}
	for i, d := range downs {
		if d != (i%2 == 0) {
			t.Fatalf("event %d (%s) down=%v: want each key pressed then released", i+1, keys[i], d)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "fake-qmp-times.log"))
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, l := range strings.Fields(string(raw)) {
		ns, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		at = append(at, time.Unix(0, ns))
	}
	if len(at) != len(keys) {
		t.Fatalf("got %d times for %d events", len(at), len(keys))
	}
	for i := 0; i < len(at); i += 2 {
		if held := at[i+1].Sub(at[i]); held < 10*time.Millisecond {
			t.Errorf("%s was held %v, want at least 10ms", keys[i], held)
		}
	}
	// a, b and ret were each followed by the delay; c by none.
	for i := 2; i <= 6; i += 2 {
		if gap := at[i].Sub(at[i-1]); gap < delay {
			t.Errorf("%s went down %v after %s was released, want at least the delay, %v", keys[i], gap, keys[i-1], delay)
		}
	}
	short, cancel := context.WithTimeout(ctx, 5*delay)
	defer cancel()
	start := time.Now()
	if err := m.SendKey(short, "a", time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Minute {
		t.Errorf("SendKey with an hour's delay and a short deadline: got %v after %v, want the deadline's error at once", err, time.Since(start))
	}
}
