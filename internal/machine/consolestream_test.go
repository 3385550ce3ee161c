package machine

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// readN reads exactly n bytes from r or fails after a deadline.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(r, b)
		got <- string(b[:k])
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("read %d console bytes: nothing after 10s", n)
		return ""
	}
}

func TestConsoleStreamBacklogThenLive(t *testing.T) {
	c := newConsole(nil, nil)
	m := &Machine{console: c}
	c.Write([]byte("boot line\nprompt# "))
	r := m.SubscribeConsole()
	defer r.Close()
	if got, want := readN(t, r, len("boot line\nprompt# ")), "boot line\nprompt# "; got != want {
		t.Errorf("backlog: got %q, want %q", got, want)
	}
	c.Write([]byte("live"))
	if got := readN(t, r, 4); got != "live" {
		t.Errorf("live: got %q, want %q", got, "live")
	}
}

func TestConsoleStreamBacklogBounded(t *testing.T) {
	c := newConsole(nil, nil)
	m := &Machine{console: c}
	c.Write(bytes.Repeat([]byte("a"), consoleBacklog))
	c.Write([]byte("tail"))
	r := m.SubscribeConsole()
	defer r.Close()
	got := readN(t, r, consoleBacklog)
	if len(got) != consoleBacklog || !strings.HasSuffix(got, "tail") {
		t.Errorf("backlog: got %d bytes ending %q, want %d ending in \"tail\"", len(got), got[max(0, len(got)-8):], consoleBacklog)
	}
}

func TestConsoleStreamSlowReaderDropsOldest(t *testing.T) {
	c := newConsole(nil, nil)
	m := &Machine{console: c}
	r := m.SubscribeConsole()
	defer r.Close()
	c.Write(bytes.Repeat([]byte("x"), subscriberBuffer))
	c.Write([]byte("newest"))
	b := make([]byte, 100)
	n, _ := r.Read(b)
	dropped := subscriberBuffer + 6 - subscriberBuffer*3/4
	if want := fmt.Sprintf("[vmlab: %d console bytes dropped", dropped); !strings.Contains(string(b[:n]), want) {
		t.Errorf("first read: got %q, want it to contain %q", b[:n], want)
	}
	noteLen := strings.Index(string(b[:n]), "]\r\n") + 3
	rest := readN(t, r, subscriberBuffer*3/4-(n-noteLen))
	if !strings.HasSuffix(rest, "newest") {
		t.Errorf("the newest bytes were dropped: the read ends %q", rest[max(0, len(rest)-10):])
	}
}

func TestConsoleStreamCloseUnblocksRead(t *testing.T) {
	c := newConsole(nil, nil)
	m := &Machine{console: c}
	r := m.SubscribeConsole()
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	r.Close()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("read after close: got %v, want io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still blocked 10s after Close")
	}
	c.Write([]byte("after close")) // must not block or panic
}

func TestWriteConsoleDown(t *testing.T) {
	m := &Machine{console: newConsole(nil, nil)}
	m.cfg.Name = "server"
	_, err := m.WriteConsole([]byte("x"))
	if err == nil || !strings.Contains(err.Error(), "server: the machine is not running") {
		t.Errorf("got %v, want the machine named and not running", err)
	}
}

func TestConsoleStreamBacklogWraps(t *testing.T) {
	c := newConsole(nil, nil)
	m := &Machine{console: c}
	var all []byte
	for i := range 20000 { // about 3.3 rings, in uneven pieces
		line := []byte(fmt.Sprintf("line %d\n", i))
		all = append(all, line...)
		c.Write(line)
	}
	r := m.SubscribeConsole()
	defer r.Close()
	want := string(all[len(all)-consoleBacklog:])
	if got := readN(t, r, consoleBacklog); got != want {
		t.Errorf("backlog after wrapping: got %d bytes starting %q, want the last %d starting %q", len(got), got[:20], consoleBacklog, want[:20])
	}
}
