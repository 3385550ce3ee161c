package qmp_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

// TestEventsInOrderAndInterleavedWithReplies has the server emit events
// before its replies, as QEMU does for "stop" (STOP precedes the return).
func TestEventsInOrderAndInterleavedWithReplies(t *testing.T) {
	srv := qmptest.NewServer(t)
	srv.Handle("stop", func(json.RawMessage) (any, *qmp.Error) {
		srv.Emit("STOP", nil)
		return nil, nil
	})
	srv.Handle("cont", func(json.RawMessage) (any, *qmp.Error) {
		srv.Emit("RESUME", nil)
		return nil, nil
	})
	c := srv.Client(t)
	all := c.Subscribe()
	stops := c.Subscribe("STOP")
	ctx := testContext(t)

	before := time.Now().Truncate(time.Microsecond)
	for _, cmd := range []string{"stop", "cont", "stop"} {
		if _, err := c.Execute(ctx, cmd, nil); err != nil {
			t.Fatalf("got error %v, want success", err)
		}
	}
	srv.Emit("VSERPORT_CHANGE", map[string]any{"id": "vmlab", "open": true})
	after := time.Now()

	want := []string{"STOP", "RESUME", "STOP", "VSERPORT_CHANGE"}
	var got []string
	var last qmp.Event
	for range want {
		last = nextEvent(t, all.Events())
		got = append(got, last.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got events %v, want %v", got, want)
	}
	if got, want := string(last.Data), `{"id":"vmlab","open":true}`; got != want {
		t.Errorf("got data %s, want %s", got, want)
	}
	if last.Time.Before(before) || last.Time.After(after) {
		t.Errorf("got time %v, want between %v and %v", last.Time, before, after)
	}
	for range 2 {
		if ev := nextEvent(t, stops.Events()); ev.Name != "STOP" {
			t.Errorf("got event %s on a STOP subscription, want STOP", ev.Name)
		}
	}
}

// TestSlowSubscriber leaves a subscription unread while many events pass:
// replies must still flow, and no event may be lost.
func TestSlowSubscriber(t *testing.T) {
	const n = 1000
	srv := qmptest.NewServer(t)
	srv.Handle("query-status", func(json.RawMessage) (any, *qmp.Error) {
		return nil, nil
	})
	c := srv.Client(t)
	slow := c.Subscribe()

	for i := range n {
		srv.Emit("RTC_CHANGE", map[string]int{"offset": i})
	}
	if _, err := c.Execute(testContext(t), "query-status", nil); err != nil {
		t.Fatalf("got error %v with a subscriber not reading, want success", err)
	}
	for i := range n {
		ev := nextEvent(t, slow.Events())
		if got, want := string(ev.Data), fmt.Sprintf(`{"offset":%d}`, i); got != want {
			t.Fatalf("got event data %s, want %s", got, want)
		}
	}
}

func TestSubscriptionWait(t *testing.T) {
	srv := qmptest.NewServer(t)
	c := srv.Client(t)
	sub := c.Subscribe()
	for _, name := range []string{"STOP", "RESUME", "SHUTDOWN", "RESET"} {
		srv.Emit(name, nil)
	}

	tests := []struct {
		name    string
		names   []string
		want    string
		wantIs  error
		timeout time.Duration // zero means testTimeout
	}{
		{name: "skips others", names: []string{"GUEST_PANICKED", "SHUTDOWN"}, want: "SHUTDOWN"},
		{name: "any event", want: "RESET"},
		{name: "deadline", names: []string{"GUEST_PANICKED"}, wantIs: context.DeadlineExceeded, timeout: deadlineTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), cmp.Or(tt.timeout, testTimeout))
			defer cancel()
			ev, err := sub.Wait(ctx, tt.names...)
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("got %s, %v, want error %v", ev.Name, err, tt.wantIs)
				}
				return
			}
			if err != nil || ev.Name != tt.want {
				t.Errorf("got %s, %v, want %s", ev.Name, err, tt.want)
			}
		})
	}

	sub.Close()
	if _, err := sub.Wait(testContext(t)); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got error %v from a closed subscription, want ErrClosed", err)
	}
}

func TestWaitEvent(t *testing.T) {
	srv := qmptest.NewServer(t)
	c := srv.Client(t)

	// WaitEvent sees only events after it subscribed, and the test cannot
	// tell when that is, so emit until it returns.
	result := make(chan error, 1)
	go func() {
		ev, err := c.WaitEvent(testContext(t), "GUEST_PANICKED")
		if err == nil && ev.Name != "GUEST_PANICKED" {
			err = fmt.Errorf("got event %s", ev.Name)
		}
		result <- err
	}()
	for done := false; !done; {
		srv.Emit("GUEST_PANICKED", map[string]string{"action": "pause"})
		select {
		case err := <-result:
			if err != nil {
				t.Errorf("got %v, want GUEST_PANICKED", err)
			}
			done = true
		default:
		}
	}

	srv.Disconnect()
	if _, err := c.WaitEvent(testContext(t), "SHUTDOWN"); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got error %v after the server hung up, want ErrClosed", err)
	}
}
