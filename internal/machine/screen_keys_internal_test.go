package machine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/keys"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

// fakeKeyboard is a guest that delivers key events only when the host
// waits for them, as late as it may: the worst case for the window.
type fakeKeyboard struct {
	delivered int64
	waits     []int64
	// sent, when set, is the host's count of events sent (the guest's
	// count starting at 0): the guest delivers no more than that, less
	// lose, the events of keys its driver does not know.
	sent *int64
	lose int64
	err  error // the answer to every wait, when set
	// stall is the waits, counted from 1, at which the guest does not
	// run: it delivers nothing until the wait times out, and the events
	// come later (a slow guest, not a lost key).
	stall    map[int]bool
	timedOut bool // the last wait timed out
}

func (k *fakeKeyboard) Wait(ctx context.Context, w agentproto.Wait) (agentproto.Result, error) {
	if k.err != nil {
		return agentproto.Result{}, k.err
	}
	if w.Kind != agentproto.WaitKeys {
		return agentproto.Result{Error: "not a key wait"}, nil
	}
	k.waits = append(k.waits, w.Keys)
	if k.stall[len(k.waits)] {
		k.timedOut = true
		return agentproto.Result{Output: strconv.FormatInt(k.delivered, 10), TimedOut: true}, nil
	}
	can := w.Keys
	if k.sent != nil {
		can = min(can, *k.sent-k.lose)
	}
	k.delivered = max(k.delivered, can)
	res := agentproto.Result{Output: strconv.FormatInt(k.delivered, 10)}
	k.timedOut = k.delivered < w.Keys
	res.TimedOut = k.timedOut
	return res, nil
}

// TestKeyWindow types chords of one to four keys against a guest that
// delivers as little as it may: before each chord goes, no more than
// keyWindow events are outstanding with it (a chord larger than that
// waits until none are), and the call ends with every event delivered.
func TestKeyWindow(t *testing.T) {
	var logs []string
	m := &Machine{cfg: Config{Boot: &Boot{}, Logf: func(f string, a ...any) { logs = append(logs, f) }}}
	k := &fakeKeyboard{delivered: 100}
	f := &keyFlow{m: m, agent: k, what: "type", base: 100}
	ctx := t.Context()
	for _, n := range []int{1, 2, 1, 1, 3, 4, 1, 2, 2, 1} {
		if err := f.before(ctx, n); err != nil {
			t.Fatal(err)
		}
		out := f.sent - (k.delivered - f.base)
		if out+int64(2*n) > keyWindow && out != 0 {
			t.Fatalf("a chord of %d keys sent with %d events outstanding: more than the window, %d", n, out, keyWindow)
		}
		f.sent += int64(2 * n)
	}
	if err := f.await(ctx, f.sent); err != nil {
		t.Fatal(err)
	}
	if k.delivered-f.base != f.sent {
		t.Errorf("the call ended with %d of %d events delivered", k.delivered-f.base, f.sent)
	}
	if len(logs) != 0 {
		t.Errorf("logged %q, want nothing", logs)
	}
}

// TestKeyWindowUncounted: a key the guest never counts costs one wait's
// timeout, is logged, and the keys after it go on the usual window.
func TestKeyWindowUncounted(t *testing.T) {
	var logs []string
	m := &Machine{cfg: Config{Boot: &Boot{}, Logf: func(f string, a ...any) { logs = append(logs, f) }}}
	k := &fakeKeyboard{lose: 2}
	f := &keyFlow{m: m, agent: k, what: "type"}
	k.sent = &f.sent
	ctx := t.Context()
	for range 6 {
		if err := f.before(ctx, 1); err != nil {
			t.Fatal(err)
		}
		f.sent += 2
	}
	if err := f.await(ctx, f.sent); err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "going on as if") {
		t.Errorf("logged %q, want one note of keys not delivered", logs)
	}
	if f.acked != f.sent {
		t.Errorf("acknowledged %d of %d events, want all, the uncounted ones counted", f.acked, f.sent)
	}
}

// TestKeyWindowSlowGuest: a guest that stalls past a wait's timeout has
// its outstanding events counted as delivered once, when the wait gives
// up; when they are delivered late, they are not counted again: from the
// next acknowledged wait on, no more than keyWindow events are
// outstanding, as the guest counts them. Counting the late events on top
// of the ones forgiven widened the window for the rest of the call, by
// the stalled events each time.
func TestKeyWindowSlowGuest(t *testing.T) {
	var logs []string
	m := &Machine{cfg: Config{Boot: &Boot{}, Logf: func(f string, a ...any) { logs = append(logs, f) }}}
	k := &fakeKeyboard{stall: map[int]bool{2: true, 5: true, 6: true}}
	f := &keyFlow{m: m, agent: k, what: "type"}
	k.sent = &f.sent
	ctx := t.Context()
	for i, n := range []int{1, 2, 1, 1, 1, 2, 1, 1, 3, 1, 1, 1, 1, 2, 1, 1} {
		waits := len(k.waits)
		if err := f.before(ctx, n); err != nil {
			t.Fatal(err)
		}
		out := f.sent - k.delivered
		if len(k.waits) > waits && k.timedOut {
			// Just forgiven: the host cannot tell a slow guest from
			// keys its driver does not count.
		} else if out+int64(2*n) > keyWindow && out != 0 {
			t.Fatalf("chord %d of %d keys sent with %d events outstanding: more than the window, %d", i, n, out, keyWindow)
		}
		f.sent += int64(2 * n)
	}
	if err := f.await(ctx, f.sent); err != nil {
		t.Fatal(err)
	}
	if k.delivered != f.sent || f.acked != f.sent {
		t.Errorf("the call ended with %d delivered and %d acknowledged of %d events", k.delivered, f.acked, f.sent)
	}
	if len(logs) != 3 {
		t.Errorf("logged %q, want a note for each of the 3 stalls", logs)
	}
}

// TestKeyWindowDown: a guest that went down before acknowledging the last
// keys (ctrl-alt-delete) ends the call without an error; one that went
// down before keys were sent is an error, and so is the caller's end.
func TestKeyWindowDown(t *testing.T) {
	m := &Machine{cfg: Config{Boot: &Boot{}}}
	gone := errors.New("agent channel closed")
	f := &keyFlow{m: m, agent: &fakeKeyboard{err: gone}, what: "send key", sent: 6}
	if err := f.await(t.Context(), f.sent); err != nil {
		t.Errorf("the last wait after the machine went down: got %v, want none", err)
	}
	f = &keyFlow{m: m, agent: &fakeKeyboard{err: gone}, what: "type", sent: 8}
	if err := f.before(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "wait for the guest's keyboard") {
		t.Errorf("a wait before a key, the machine down: got %v, want an error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f = &keyFlow{m: m, agent: &fakeKeyboard{err: context.Canceled}, what: "type", sent: 8}
	if err := f.await(ctx, f.sent); !errors.Is(err, context.Canceled) {
		t.Errorf("a wait with the caller's context ended: got %v, want it canceled", err)
	}
}

// TestSendChordMachineStops: a chord that stops the machine while its keys
// are down (ctrl-alt-delete: QEMU refuses the release with "VM not
// running" before it exits) was taken; a release refused while the
// machine still runs is an error.
func TestSendChordMachineStops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		running bool
		wantErr bool
	}{
		{name: "stopped", running: false},
		{name: "running", running: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := qmptest.NewServer(t)
			var events int
			srv.Handle("input-send-event", func(json.RawMessage) (any, *qmp.Error) {
				events++
				if events == 2 {
					return nil, &qmp.Error{Class: "GenericError", Desc: "VM not running"}
				}
				return nil, nil
			})
			srv.Handle("query-status", func(json.RawMessage) (any, *qmp.Error) {
				status := "shutdown"
				if tc.running {
					status = "running"
				}
				return map[string]any{"running": tc.running, "status": status}, nil
			})
			m := &Machine{cfg: Config{Boot: &Boot{}}}
			chord, err := keys.Parse("ctrl-alt-delete")
			if err != nil {
				t.Fatal(err)
			}
			err = m.sendChord(t.Context(), srv.Client(t), "send key", chord, 0)
			if (err != nil) != tc.wantErr {
				t.Errorf("got %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "release the keys") {
				t.Errorf("got %v, want it to say the release failed", err)
			}
		})
	}
}
