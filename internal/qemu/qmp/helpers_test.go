package qmp_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

// testTimeout bounds every wait in these tests; reaching it is a failure,
// never a way to let time pass.
const testTimeout = 10 * time.Second

// deadlineTimeout is the deadline of cases that test what happens when a
// deadline passes; only those cases use it.
const deadlineTimeout = 200 * time.Millisecond

// testContext returns a context that ends with the test or after testTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// rawServer accepts one connection on a unix socket and runs script on it,
// for servers that misbehave in ways qmptest will not. It returns the
// client's end. script must return once the client closes its end.
func rawServer(t *testing.T, script func(conn net.Conn, dec *json.Decoder)) net.Conn {
	t.Helper()
	path := qmptest.SocketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		script(conn, json.NewDecoder(conn))
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	return conn
}

const rawGreeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}` + "\n"

// rawRequest is what a raw server reads from the client.
type rawRequest struct {
	Execute string          `json:"execute"`
	ID      json.RawMessage `json:"id"`
}

// rawHandshake plays QEMU's side of the handshake; it reports false when the
// client went away.
func rawHandshake(conn net.Conn, dec *json.Decoder) bool {
	if _, err := conn.Write([]byte(rawGreeting)); err != nil {
		return false
	}
	var req rawRequest
	if err := dec.Decode(&req); err != nil {
		return false
	}
	_, err := conn.Write([]byte(`{"return": {}, "id": ` + string(req.ID) + "}\n"))
	return err == nil
}

// drain reads until the client closes its end.
func drain(dec *json.Decoder) {
	for {
		var v any
		if dec.Decode(&v) != nil {
			return
		}
	}
}

// nextEvent receives one event from ch, failing the test if none comes.
func nextEvent(t *testing.T, ch <-chan qmp.Event) qmp.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("event channel closed, want an event")
		}
		return ev
	case <-time.After(testTimeout):
		t.Fatalf("no event after %v", testTimeout)
	}
	return qmp.Event{}
}

// wantClosed checks that ch is closed with no event left in it.
func wantClosed(t *testing.T, ch <-chan qmp.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("got event %s, want channel closed", ev.Name)
		}
	case <-time.After(testTimeout):
		t.Fatalf("event channel still open after %v", testTimeout)
	}
}
