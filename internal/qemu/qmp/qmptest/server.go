// Package qmptest provides a fake QMP server for tests of code that drives
// QEMU, in the manner of net/http/httptest: it listens on a unix socket,
// performs the greeting and capabilities handshake as QEMU 7.2 does, answers
// commands with handlers the test registers, emits events on demand, and can
// drop its connections abruptly to play a QEMU that died.
package qmptest

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// HandlerFunc answers one command. args is the command's "arguments" member,
// nil when it had none. A nil result is sent as {}, as QEMU does for commands
// that return nothing; a non-nil *qmp.Error is sent as the error reply.
//
// Handlers run on their own goroutine, one per command, so replies may
// arrive out of order. A handler that blocks must return once the test's
// context (t.Context()) is done, because Server.Close waits for it.
type HandlerFunc func(args json.RawMessage) (any, *qmp.Error)

// Server is a fake QEMU monitor. Its methods are safe for concurrent use,
// including from handlers.
type Server struct {
	t    testing.TB
	path string
	ln   net.Listener

	mu       sync.Mutex
	handlers map[string]HandlerFunc
	conns    map[*serverConn]struct{}
	closed   bool

	wg sync.WaitGroup // the accept loop, every connection and every handler
}

// NewServer starts a server listening on a unix socket in t.TempDir(). It is
// closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	path := SocketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	s := &Server{
		t:        t,
		path:     path,
		ln:       ln,
		handlers: make(map[string]HandlerFunc),
		conns:    make(map[*serverConn]struct{}),
	}
	t.Cleanup(s.Close)
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// SocketPath returns a socket path in a fresh temporary directory, short
// enough for sun_path (108 bytes on Linux) even when the test's name is long.
func SocketPath(t testing.TB) string {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	if len(path) < 100 {
		return path
	}
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatalf("make socket directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "qmp.sock")
}

// Path returns the unix socket path the server listens on.
func (s *Server) Path() string {
	return s.path
}

// Handle registers h for command, replacing any earlier handler. Commands
// without a handler get a CommandNotFound error, as from QEMU.
func (s *Server) Handle(command string, h HandlerFunc) {
	s.mu.Lock()
	s.handlers[command] = h
	s.mu.Unlock()
}

// Client connects a qmp.Client to the server, failing the test if the
// handshake fails. The client is closed when the test ends.
func (s *Server) Client(t testing.TB) *qmp.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", s.path)
	if err != nil {
		t.Fatalf("dial %s: %v", s.path, err)
	}
	c, err := qmp.NewClient(ctx, conn)
	if err != nil {
		t.Fatalf("connect qmp client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Emit sends an event with the given data (nil for none) and the current
// time to every connection that has finished the handshake. Called from a
// handler, the event reaches the client before that handler's reply.
func (s *Server) Emit(name string, data any) {
	ev := event{Event: name, Timestamp: timestampOf(time.Now())}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			s.t.Errorf("encode data of event %s: %v", name, err)
			return
		}
		ev.Data = raw
	}
	for _, c := range s.negotiated() {
		c.send(ev)
	}
}

// Disconnect closes every connection at once, without a SHUTDOWN event,
// as when QEMU crashes. The server keeps listening.
func (s *Server) Disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// Close stops listening, closes every connection and waits for the server's
// goroutines, handlers included. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		for c := range s.conns {
			c.nc.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		c, ok := s.track(nc)
		if !ok {
			nc.Close()
			return
		}
		s.wg.Add(1)
		go s.serve(c)
	}
}

// track records a new connection, unless the server is closing.
func (s *Server) track(nc net.Conn) (*serverConn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	c := &serverConn{nc: nc}
	s.conns[c] = struct{}{}
	return c, true
}

func (s *Server) negotiated() []*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var conns []*serverConn
	for c := range s.conns {
		if c.ready {
			conns = append(conns, c)
		}
	}
	return conns
}

func (s *Server) handler(command string) HandlerFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[command]
}
