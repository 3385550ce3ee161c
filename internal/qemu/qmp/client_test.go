package qmp_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
)

func TestHandshake(t *testing.T) {
	srv := qmptest.NewServer(t)
	c := srv.Client(t)

	g := c.Greeting()
	if got, want := g.Version.String(), "7.2.0"; got != want {
		t.Errorf("got version %s, want %s", got, want)
	}
	if got, want := g.Version.Package, "qmptest"; got != want {
		t.Errorf("got package %q, want %q", got, want)
	}
	if got, want := strings.Join(g.Capabilities, ","), "oob"; got != want {
		t.Errorf("got capabilities %q, want %q", got, want)
	}
	if err := c.Err(); err != nil {
		t.Errorf("got Err() = %v, want nil", err)
	}
	select {
	case <-c.Done():
		t.Errorf("got Done() closed, want open")
	default:
	}
}

func TestNewClientFailsOnBadServer(t *testing.T) {
	tests := []struct {
		name     string
		script   func(conn net.Conn, dec *json.Decoder)
		wantIs   error         // if set, errors.Is must hold
		wantText string        // if set, the error must contain it
		wantQMP  string        // if set, the error must wrap a *qmp.Error of this class
		timeout  time.Duration // of the handshake; zero means testTimeout
	}{{
		name: "garbage instead of greeting",
		script: func(conn net.Conn, dec *json.Decoder) {
			conn.Write([]byte("hello\n"))
			drain(dec)
		},
		wantText: "read greeting: invalid character 'h'",
	}, {
		name: "JSON that is not a greeting",
		script: func(conn net.Conn, dec *json.Decoder) {
			conn.Write([]byte(`{"hello": 1}` + "\n"))
			drain(dec)
		},
		wantText: "read greeting: not a QMP greeting",
	}, {
		name:     "closed before greeting",
		script:   func(net.Conn, *json.Decoder) {},
		wantIs:   io.EOF,
		wantText: "read greeting: EOF",
	}, {
		name: "closed instead of capabilities reply",
		script: func(conn net.Conn, dec *json.Decoder) {
			conn.Write([]byte(rawGreeting))
			var req rawRequest
			dec.Decode(&req)
		},
		wantIs:   io.EOF,
		wantText: "negotiate capabilities",
	}, {
		name: "capabilities refused",
		script: func(conn net.Conn, dec *json.Decoder) {
			conn.Write([]byte(rawGreeting))
			var req rawRequest
			dec.Decode(&req)
			conn.Write([]byte(`{"error": {"class": "GenericError", "desc": "no"}, "id": ` + string(req.ID) + "}\n"))
			drain(dec)
		},
		wantQMP: "GenericError",
	}, {
		name:    "silent server",
		script:  func(conn net.Conn, dec *json.Decoder) { drain(dec) },
		wantIs:  context.DeadlineExceeded,
		timeout: deadlineTimeout,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawServer(t, tt.script)
			timeout := cmp.Or(tt.timeout, testTimeout)
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			c, err := qmp.NewClient(ctx, conn)
			if err == nil {
				c.Close()
				t.Fatalf("got NewClient success, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got error %q, want one wrapping %q", err, tt.wantIs)
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantText)
			}
			var qerr *qmp.Error
			if tt.wantQMP != "" && (!errors.As(err, &qerr) || qerr.Class != tt.wantQMP) {
				t.Errorf("got error %q, want a QMP error of class %s", err, tt.wantQMP)
			}
		})
	}
}

func TestExecute(t *testing.T) {
	srv := qmptest.NewServer(t)
	srv.Handle("query-status", func(json.RawMessage) (any, *qmp.Error) {
		return map[string]any{"status": "running", "running": true}, nil
	})
	srv.Handle("echo", func(args json.RawMessage) (any, *qmp.Error) {
		return map[string]string{"args": string(args)}, nil
	})
	srv.Handle("device_del", func(json.RawMessage) (any, *qmp.Error) {
		return nil, &qmp.Error{Class: "DeviceNotFound", Desc: "Device 'nic9' not found"}
	})
	c := srv.Client(t)

	tests := []struct {
		name      string
		command   string
		args      any
		want      string // the raw return value
		wantClass string // the QMP error class, if an error is expected
		wantText  string // text the error must contain
	}{
		{name: "return value", command: "query-status", want: `{"running":true,"status":"running"}`},
		{name: "arguments sent", command: "echo", args: map[string]string{"id": "nic0"}, want: `{"args":"{\"id\":\"nic0\"}"}`},
		{name: "nil arguments omitted", command: "echo", want: `{"args":""}`},
		{name: "typed nil arguments omitted", command: "echo", args: (*struct{})(nil), want: `{"args":""}`},
		{name: "QMP error", command: "device_del", wantClass: "DeviceNotFound", wantText: "execute device_del: Device 'nic9' not found"},
		{name: "unknown command", command: "no-such-command", wantClass: "CommandNotFound", wantText: "The command no-such-command has not been found"},
		{name: "unencodable arguments", command: "echo", args: make(chan int), wantText: "execute echo: encode arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Execute(testContext(t), tt.command, tt.args)
			if tt.wantClass == "" && tt.wantText == "" {
				if err != nil {
					t.Fatalf("got error %v, want return %s", err, tt.want)
				}
				if string(got) != tt.want {
					t.Errorf("got return %s, want %s", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got return %s, want an error", got)
			}
			var qerr *qmp.Error
			if tt.wantClass != "" && (!errors.As(err, &qerr) || qerr.Class != tt.wantClass) {
				t.Errorf("got error %q, want a QMP error of class %s", err, tt.wantClass)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
	if err := c.Err(); err != nil {
		t.Errorf("got Err() = %v after errors from commands, want nil", err)
	}
}

// TestExecuteConcurrent holds every reply until all requests have arrived,
// then releases them at once, so replies come back in whatever order the
// server's goroutines run and must be matched by id.
func TestExecuteConcurrent(t *testing.T) {
	const n = 32
	srv := qmptest.NewServer(t)
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	srv.Handle("echo", func(args json.RawMessage) (any, *qmp.Error) {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-t.Context().Done():
		}
		return args, nil
	})
	c := srv.Client(t)
	ctx := testContext(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			got, err := c.Execute(ctx, "echo", map[string]int{"n": i})
			if want := fmt.Sprintf(`{"n":%d}`, i); err != nil || string(got) != want {
				errs <- fmt.Errorf("got %s, %v, want %s", got, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExecuteContextEnds(t *testing.T) {
	srv := qmptest.NewServer(t)
	started := make(chan struct{})
	release := make(chan struct{})
	srv.Handle("block", func(json.RawMessage) (any, *qmp.Error) {
		close(started)
		select {
		case <-release:
		case <-t.Context().Done():
		}
		return "late", nil
	})
	srv.Handle("query-status", func(json.RawMessage) (any, *qmp.Error) {
		return "fine", nil
	})
	c := srv.Client(t)

	t.Run("canceled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		result := make(chan error, 1)
		go func() {
			_, err := c.Execute(ctx, "block", nil)
			result <- err
		}()
		<-started
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Errorf("got error %v, want context.Canceled", err)
		}
	})
	// The late reply to "block" must be dropped, not taken for this one.
	close(release)
	t.Run("client still works", func(t *testing.T) {
		got, err := c.Execute(testContext(t), "query-status", nil)
		if err != nil || string(got) != `"fine"` {
			t.Errorf(`got %s, %v, want "fine"`, got, err)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, context.Canceled) {
			t.Errorf("got error %v, want context.Canceled", err)
		}
	})
}

func TestLargeMessages(t *testing.T) {
	srv := qmptest.NewServer(t)
	srv.Handle("echo", func(args json.RawMessage) (any, *qmp.Error) {
		return args, nil
	})
	c := srv.Client(t)

	// query-qmp-schema answers 206,986 bytes on QEMU 7.2.22 (measured by
	// TestRealQEMU); go well past that and bufio.Scanner's 64 KiB default.
	big := map[string]string{"blob": strings.Repeat("x", 1<<20)}
	want, _ := json.Marshal(big)
	got, err := c.Execute(testContext(t), "echo", big)
	if err != nil {
		t.Fatalf("got error %v, want a 1 MiB return", err)
	}
	if string(got) != string(want) {
		t.Errorf("got a return of %d bytes, want the %d bytes sent", len(got), len(want))
	}
}

// blockedCall starts an Execute whose reply never comes (the server's
// handler blocks until the test ends) and returns once the server holds it,
// with a subscription taken before, and the channel its error arrives on.
func blockedCall(t *testing.T) (*qmptest.Server, *qmp.Client, *qmp.Subscription, <-chan error) {
	t.Helper()
	srv := qmptest.NewServer(t)
	started := make(chan struct{})
	srv.Handle("block", func(json.RawMessage) (any, *qmp.Error) {
		close(started)
		<-t.Context().Done()
		return nil, nil
	})
	c := srv.Client(t)
	sub := c.Subscribe()
	ctx := testContext(t)
	result := make(chan error, 1)
	go func() {
		_, err := c.Execute(ctx, "block", nil)
		result <- err
	}()
	<-started
	return srv, c, sub, result
}

func TestConnectionEndsMidCommand(t *testing.T) {
	srv, c, sub, result := blockedCall(t)
	ctx := testContext(t)
	srv.Emit("SHUTDOWN", map[string]any{"guest": false})
	srv.Disconnect()

	if err := <-result; !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got pending Execute error %v, want ErrClosed", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatalf("Done() still open after the server hung up")
	}
	if err := c.Err(); !errors.Is(err, qmp.ErrClosed) || !errors.Is(err, io.EOF) {
		t.Errorf("got Err() = %v, want ErrClosed wrapping EOF", err)
	}
	// An event sent before the end is delivered, then the channel closes.
	if ev := nextEvent(t, sub.Events()); ev.Name != "SHUTDOWN" {
		t.Errorf("got event %s, want SHUTDOWN", ev.Name)
	}
	wantClosed(t, sub.Events())
	if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got Execute error %v after the end, want ErrClosed", err)
	}
	wantClosed(t, c.Subscribe().Events())
	if err := c.Close(); err != nil {
		t.Errorf("got Close() = %v, want nil", err)
	}
}

func TestGarbageAfterHandshake(t *testing.T) {
	conn := rawServer(t, func(conn net.Conn, dec *json.Decoder) {
		if rawHandshake(conn, dec) {
			conn.Write([]byte("}{\n"))
			drain(dec)
		}
	})
	ctx := testContext(t)
	c, err := qmp.NewClient(ctx, conn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()

	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatalf("Done() still open after garbage")
	}
	err = c.Err()
	if !errors.Is(err, qmp.ErrClosed) || !strings.Contains(err.Error(), "read message: invalid character '}'") {
		t.Errorf("got Err() = %v, want ErrClosed saying read message: invalid character", err)
	}
}

func TestCloseIsIdempotentAndWaits(t *testing.T) {
	_, c, sub, result := blockedCall(t)

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	c.Close()

	// The goroutines the Client owns, not the caller's blocked in Execute.
	if got := goroutinesIn("qmp.(*Client).readLoop", "qmp.(*Subscription).run"); got != "" {
		t.Errorf("got goroutines left after Close:\n%s\nwant none", got)
	}
	select {
	case <-c.Done():
	default:
		t.Errorf("got Done() open after Close, want closed")
	}
	if err := c.Err(); err != qmp.ErrClosed {
		t.Errorf("got Err() = %v, want ErrClosed", err)
	}
	if err := <-result; !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("got pending Execute error %v, want ErrClosed", err)
	}
	wantClosed(t, sub.Events())
	sub.Close()
	sub.Close()
}

// goroutinesIn returns the stacks of live goroutines running a function
// whose name contains one of the given strings.
func goroutinesIn(names ...string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, name := range names {
			if strings.Contains(g, name) {
				found = append(found, g)
				break
			}
		}
	}
	return strings.Join(found, "\n\n")
}
