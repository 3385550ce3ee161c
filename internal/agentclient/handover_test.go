package agentclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestHandover plays a systemd guest's two agents: the PID-1 agent answers
// the units and goes, systemd's says hello again, and the session goes on
// with it (Handover returns its hello); a third hello breaks the channel.
// Before, the second hello broke it.
func TestHandover(t *testing.T) {
	host, guest := socketpair(t)
	defer guest.Close()
	c := agentclient.New(host)
	defer c.Close()
	w, r := agentproto.NewWriter(guest), agentproto.NewReader(guest)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hello := func(stage string) {
		t.Helper()
		h := agentproto.Hello{Version: agentproto.Version, Stages: []agentproto.Stage{{Name: stage}}}
		if err := w.WriteFrame(agentproto.THello, 0, agentproto.Encode(h)); err != nil {
			t.Fatal(err)
		}
	}
	hello("pid1")
	if h, err := c.Hello(ctx); err != nil || h.Stages[0].Name != "pid1" {
		t.Fatalf("first hello: %v, %v", h, err)
	}
	units := make(chan error, 1)
	go func() {
		units <- c.Units(ctx, nil, []agentproto.UnitFile{{Name: "a.service", Text: "[Service]\n"}}, nil)
	}()
	f, err := r.ReadFrame()
	if err != nil || f.Type != agentproto.TRequest {
		t.Fatalf("read the units request: %v, %v", f.Type, err)
	}
	if err := w.WriteFrame(agentproto.TResult, f.Stream, agentproto.Encode(agentproto.Result{})); err != nil {
		t.Fatal(err)
	}
	if err := <-units; err != nil {
		t.Fatal(err)
	}
	hello("unit")
	h, err := c.Handover(ctx)
	if err != nil || len(h.Stages) != 1 || h.Stages[0].Name != "unit" {
		t.Fatalf("Handover: %v, %v; want the second hello", h, err)
	}
	hello("again")
	<-c.Done()
	if err := c.Err(); !errors.Is(err, agentclient.ErrClosed) || !strings.Contains(err.Error(), "a third hello") {
		t.Errorf("after a third hello: %v", err)
	}
}

// TestSecondHelloUnasked: an agent that says hello again with no units sent
// (it restarted) breaks the channel, and Handover says there was none to
// wait for.
func TestSecondHelloUnasked(t *testing.T) {
	host, guest := socketpair(t)
	defer guest.Close()
	c := agentclient.New(host)
	defer c.Close()
	w := agentproto.NewWriter(guest)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Handover(ctx); err == nil || !strings.Contains(err.Error(), "no units were sent") {
		t.Errorf("Handover before Units: %v", err)
	}
	for range 2 {
		w.WriteFrame(agentproto.THello, 0, agentproto.Encode(agentproto.Hello{Version: agentproto.Version}))
	}
	<-c.Done()
	if err := c.Err(); !strings.Contains(err.Error(), "a second hello (the agent restarted)") {
		t.Errorf("after an unasked second hello: %v", err)
	}
}
