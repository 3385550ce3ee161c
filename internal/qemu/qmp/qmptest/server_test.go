package qmptest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

// TestProtocol drives the server with raw JSON lines, checking the
// handshake rules QEMU enforces and the replies handlers produce.
func TestProtocol(t *testing.T) {
	srv := qmptest.NewServer(t)
	srv.Handle("query-status", func(json.RawMessage) (any, *qmp.Error) {
		return map[string]string{"status": "running"}, nil
	})
	srv.Handle("cont", func(json.RawMessage) (any, *qmp.Error) {
		return nil, nil
	})
	srv.Handle("echo", func(args json.RawMessage) (any, *qmp.Error) {
		return args, nil
	})

	conn, err := net.Dial("unix", srv.Path())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	lines := bufio.NewReader(conn)
	greeting, err := lines.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, `{"QMP": {"version": {"qemu": {`) {
		t.Fatalf("got greeting %q, %v, want a QMP greeting", greeting, err)
	}

	steps := []struct {
		name string
		send string
		want string
	}{{
		name: "command before negotiation",
		send: `{"execute": "query-status", "id": 1}`,
		want: `{"error":{"class":"CommandNotFound","desc":"Expecting capabilities negotiation with 'qmp_capabilities'"},"id":1}`,
	}, {
		name: "negotiation",
		send: `{"execute": "qmp_capabilities", "id": "a"}`,
		want: `{"return":{},"id":"a"}`,
	}, {
		name: "negotiation again",
		send: `{"execute": "qmp_capabilities", "id": 2}`,
		want: `{"error":{"class":"CommandNotFound","desc":"Capabilities negotiation is already complete, command ignored"},"id":2}`,
	}, {
		name: "handler result",
		send: `{"execute": "query-status", "id": 3}`,
		want: `{"return":{"status":"running"},"id":3}`,
	}, {
		name: "nil result",
		send: `{"execute": "cont", "id": 4}`,
		want: `{"return":{},"id":4}`,
	}, {
		name: "arguments",
		send: `{"execute": "echo", "arguments": {"x": [1, 2]}, "id": 5}`,
		want: `{"return":{"x":[1,2]},"id":5}`,
	}, {
		name: "no id",
		send: `{"execute": "cont"}`,
		want: `{"return":{}}`,
	}, {
		name: "unknown command",
		send: `{"execute": "frobnicate", "id": 6}`,
		want: `{"error":{"class":"CommandNotFound","desc":"The command frobnicate has not been found"},"id":6}`,
	}}
	for _, step := range steps {
		if _, err := conn.Write([]byte(step.send + "\n")); err != nil {
			t.Fatalf("%s: send: %v", step.name, err)
		}
		got, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: read reply: %v", step.name, err)
		}
		if got = strings.TrimSuffix(got, "\n"); got != step.want {
			t.Errorf("%s: got %s, want %s", step.name, got, step.want)
		}
	}
}

func TestEmitAndDisconnect(t *testing.T) {
	srv := qmptest.NewServer(t)
	c := srv.Client(t)
	sub := c.Subscribe()

	srv.Emit("VSERPORT_CHANGE", map[string]any{"id": "vmlab", "open": true})
	srv.Disconnect()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := sub.Wait(ctx)
	if err != nil || ev.Name != "VSERPORT_CHANGE" || string(ev.Data) != `{"id":"vmlab","open":true}` {
		t.Errorf("got %s %s, %v, want VSERPORT_CHANGE {\"id\":\"vmlab\",\"open\":true}", ev.Name, ev.Data, err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatalf("client still connected after Disconnect")
	}

	// The server keeps listening after Disconnect, as a restarted QEMU would.
	again := srv.Client(t)
	if err := again.Err(); err != nil {
		t.Errorf("got Err() = %v on a new connection, want nil", err)
	}
}
