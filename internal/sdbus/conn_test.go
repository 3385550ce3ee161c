package sdbus

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeBus is a server as systemd's private socket is (Serve): it checks
// the client's SASL line and hands every message after the first (the
// Ping that wants no reply) to handle, which answers through send.
type fakeBus struct {
	path   string
	first  chan *Message // the first message after BEGIN
	handle func(m *Message, send func(*Message) error)
}

func newFakeBus(t *testing.T, handle func(m *Message, send func(*Message) error)) *fakeBus {
	t.Helper()
	b := &fakeBus{first: make(chan *Message, 1), handle: handle}
	b.path = acceptOne(t, func(c net.Conn) {
		first := true
		err := Serve(&authChecker{Conn: c, t: t}, func(m *Message, send func(*Message) error) {
			if first {
				first = false
				b.first <- m
				return
			}
			b.handle(m, send)
		})
		if err != nil {
			t.Errorf("fake bus: %v", err)
		}
	})
	return b
}

// acceptOne listens on a new socket and hands the first connection to
// serve, on its own goroutine; the connection closes when serve returns or
// the test ends, and the test's cleanup waits for serve.
func acceptOne(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "private")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		stop := context.AfterFunc(t.Context(), func() { c.Close() })
		defer stop()
		serve(c)
	}()
	return path
}

// authChecker checks the client's first line: AUTH EXTERNAL with its uid
// in hex, as systemd checks it against the socket's peer credentials.
type authChecker struct {
	net.Conn
	t       *testing.T
	checked bool
}

func (a *authChecker) Read(p []byte) (int, error) {
	n, err := a.Conn.Read(p)
	if !a.checked && n > 0 {
		a.checked = true
		want := "\x00AUTH EXTERNAL " + hex.EncodeToString([]byte(strconv.Itoa(os.Getuid()))) + "\r\n"
		if !strings.HasPrefix(string(p[:n]), want) {
			a.t.Errorf("auth line %q, want %q", p[:n], want)
		}
	}
	return n, err
}

func reply(to *Message, sig Signature, body ...any) *Message { return Reply(to, sig, body...) }

func dial(t *testing.T, b *fakeBus) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, b.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCall(t *testing.T) {
	const unit = ObjectPath("/org/freedesktop/systemd1/unit/web_2eservice")
	b := newFakeBus(t, func(m *Message, send func(*Message) error) {
		if m.Member == "LoadUnit" && m.Interface == ManagerInterface && m.Path == ManagerPath &&
			m.Signature == "s" && m.Body[0] == "web.service" {
			send(reply(m, "o", unit))
			return
		}
		send(ErrorReply(m, "org.freedesktop.DBus.Error.UnknownMethod", "no such method"))
	})
	c := dial(t, b)
	got, err := c.LoadUnit(t.Context(), "web.service")
	if err != nil || got != unit {
		t.Errorf("LoadUnit: got %q, %v; want %q", got, err, unit)
	}
	ping := <-b.first
	if ping.Member != "Ping" || ping.Interface != "org.freedesktop.DBus.Peer" || ping.Flags&FlagNoReplyExpected == 0 {
		t.Errorf("first message %s.%s flags %#x, want a Ping that expects no reply", ping.Interface, ping.Member, ping.Flags)
	}
}

func TestCallErrorReply(t *testing.T) {
	b := newFakeBus(t, func(m *Message, send func(*Message) error) {
		send(ErrorReply(m, "org.freedesktop.systemd1.NoSuchUnit", "Unit nosuch.service not found."))
	})
	c := dial(t, b)
	_, err := c.Property(t.Context(), ManagerPath, ManagerInterface, "NJobs")
	var e *Error
	if !errors.As(err, &e) || e.Name != "org.freedesktop.systemd1.NoSuchUnit" || e.Message != "Unit nosuch.service not found." {
		t.Fatalf("got %v, want the NoSuchUnit error reply", err)
	}
	if !strings.Contains(err.Error(), "get NJobs of /org/freedesktop/systemd1: org.freedesktop.systemd1.NoSuchUnit: Unit nosuch.service not found.") {
		t.Errorf("error text %q does not say what failed", err)
	}
}

// TestSignalDuringCall: systemd's signals interleave with replies; each
// goes where it belongs.
func TestSignalDuringCall(t *testing.T) {
	const unit = ObjectPath("/org/freedesktop/systemd1/unit/web_2eservice")
	b := newFakeBus(t, func(m *Message, send func(*Message) error) {
		send(&Message{Type: TypeSignal, Path: ManagerPath, Interface: ManagerInterface, Member: "JobRemoved",
			Signature: "uoss", Body: []any{uint32(5), ObjectPath("/org/freedesktop/systemd1/job/5"), "other.service", "done"}})
		send(&Message{Type: TypeSignal, Path: unit, Interface: PropertiesInterface, Member: "PropertiesChanged",
			Signature: "sa{sv}as", Body: []any{UnitInterface, map[any]any{"ActiveState": Variant{"s", "active"}}, []any{}}})
		send(reply(m, "v", Variant{"s", "active"}))
	})
	c := dial(t, b)
	changed := make(chan *Message, 1)
	c.Notify(changed, func(m *Message) bool { return m.Path == unit })
	jobs := make(chan *Message, 1)
	c.Notify(jobs, func(m *Message) bool { return m.Member == "JobRemoved" })
	got, err := c.Property(t.Context(), unit, UnitInterface, "ActiveState")
	if err != nil || got != "active" {
		t.Fatalf("Get: got %v, %v; want active", got, err)
	}
	// The reply came after the signals: both are in their channels by now.
	select {
	case m := <-changed:
		if _, props, _, ok := PropertiesChanged(m); !ok || props["ActiveState"] != "active" {
			t.Errorf("got %+v, want PropertiesChanged with ActiveState active", m)
		}
	default:
		t.Error("PropertiesChanged was not delivered")
	}
	select {
	case m := <-jobs:
		if id, _, u, result, ok := JobRemoved(m); !ok || id != 5 || u != "other.service" || result != "done" {
			t.Errorf("JobRemoved: got %d %q %q %v", id, u, result, ok)
		}
	default:
		t.Error("JobRemoved was not delivered")
	}
	// Stopped, a channel gets no more signals.
	c.StopNotify(changed)
	if _, err := c.Property(t.Context(), unit, UnitInterface, "ActiveState"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-changed:
		t.Errorf("got %s after StopNotify", m.Member)
	default:
	}
	if len(jobs) != 1 {
		t.Error("the other channel lost its signal")
	}
}

func TestCallCanceled(t *testing.T) {
	b := newFakeBus(t, func(m *Message, send func(*Message) error) {
		if m.Member == "Ping" {
			send(reply(m, ""))
		}
		// Anything else is never answered.
	})
	c := dial(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() {
		_, err := c.LoadUnit(ctx, "slow.service")
		res <- err
	}()
	cancel()
	wantCanceled(t, res)
	// The connection still serves.
	if _, err := c.Call(t.Context(), ManagerPath, "org.freedesktop.DBus.Peer.Ping", ""); err != nil {
		t.Errorf("Ping after a canceled call: %v", err)
	}
}

func TestDialDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // and never answer
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, path)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
}

func TestDialRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "REJECTED EXTERNAL\r\n")
	}()
	_, err = Dial(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), `server answered "REJECTED EXTERNAL"`) {
		t.Errorf("got %v, want the server's rejection", err)
	}
}

// TestPeerCloses: a call in flight when the peer goes away returns
// ErrClosed; Close after that, and twice, is fine.
func TestPeerCloses(t *testing.T) {
	var server net.Conn
	path := filepath.Join(t.TempDir(), "private")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		server = c
		r := bufio.NewReader(c)
		r.ReadString('\n')
		io.WriteString(c, "OK 0123456789abcdef0123456789abcdef\r\n")
		r.ReadString('\n')
		readMessage(r) // the Ping
		readMessage(r) // the call
		close(got)
	}()
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.LoadUnit(t.Context(), "web.service")
		res <- err
	}()
	<-got
	server.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
	c.Close()
	c.Close()
	if _, err := c.LoadUnit(t.Context(), "web.service"); err == nil {
		t.Error("a call on a closed Conn succeeded")
	}
}

// TestPeerClosesUnread: a peer that goes away with the call unread in its
// socket (systemd's daemon-reexec with a request queued) makes the kernel
// end the connection with ECONNRESET, not an EOF: that is ErrClosed too,
// which a wait takes as the cue to connect again. (It read "connection reset
// by peer", and a wait for a unit failed instead of going on.)
func TestPeerClosesUnread(t *testing.T) {
	ready, queued := make(chan net.Conn, 1), make(chan struct{})
	path := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		ready <- c
		<-queued
	})
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := <-ready
	res := make(chan error, 1)
	go func() {
		_, err := c.LoadUnit(t.Context(), "web.service")
		res <- err
	}()
	// The call's bytes are in the server's socket, unread: close it then.
	rc, err := server.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, -1)
		return n > 0
	})
	server.Close()
	close(queued)
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
	<-c.Done()
}

// fakeServer accepts one connection on a new socket, authenticates it as
// systemd does, reads the client's Ping and hands the connection, with its
// reader, to serve.
func fakeServer(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	return acceptOne(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		r.ReadString('\n')
		io.WriteString(c, "OK 0123456789abcdef0123456789abcdef\r\n")
		r.ReadString('\n')
		readMessage(r) // the Ping
		serve(c, r)
	})
}

// TestMalformedMessageCloses: a connection whose peer sends what is not a
// message ends, and its socket is closed: the peer sees the end.
func TestMalformedMessageCloses(t *testing.T) {
	peerSaw := make(chan error, 1)
	path := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "not a D-Bus message at all")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := r.ReadByte()
		peerSaw <- err
	})
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end on a malformed message")
	}
	if err := <-peerSaw; !errors.Is(err, io.EOF) {
		t.Errorf("the peer read %v, want EOF: the socket was left open", err)
	}
}

// TestCallPastDeadline: a call whose deadline has passed before it is sent
// returns the deadline's error and leaves the connection serving the
// others.
func TestCallPastDeadline(t *testing.T) {
	b := newFakeBus(t, func(m *Message, send func(*Message) error) { send(reply(m, "")) })
	c := dial(t, b)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.Call(ctx, ManagerPath, "org.freedesktop.DBus.Peer.Ping", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-c.Done():
		t.Fatalf("the connection ended: %v", c.readErr())
	default:
	}
	if _, err := c.Call(t.Context(), ManagerPath, "org.freedesktop.DBus.Peer.Ping", ""); err != nil {
		t.Errorf("Ping after a late call: %v", err)
	}
}

// TestCallCanceledWhileWriting: a call canceled (no deadline) while its
// message is being written to a peer that does not read returns at once.
// Part of the message went out, so the connection is closed.
func TestCallCanceledWhileWriting(t *testing.T) {
	reading := make(chan struct{})
	path := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		r.ReadByte() // the call has begun; read nothing more
		close(reading)
		<-t.Context().Done()
	})
	c, err := Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() {
		// More than the socket's buffers hold.
		_, err := c.LoadUnit(ctx, strings.Repeat("x", 8<<20))
		res <- err
	}()
	<-reading
	cancel()
	wantCanceled(t, res)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("a connection with half a message written was not closed")
	}
}

// wantCanceled checks that the call whose result res carries returns
// context.Canceled within 5 s of its cancel.
func wantCanceled(t *testing.T, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not return within 5 s of its cancel")
	}
}
