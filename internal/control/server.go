// Package control owns a running lab's control socket: the versioned
// protocol (docs/control-protocol.md) through which other terminals and
// programs reach a lab that vmlab up (or a test, or a REPL) keeps up, the
// per-user registry of those sockets, and the client that vmlab shell,
// console, status and down use.
//
// A lab serves with Listen over a Backend (LabBackend adapts a *lab.Lab;
// tests use a fake), and stops serving with Close. Only the user who owns
// the lab can connect: the socket's directory is 0700, the socket 0600,
// and every connection's peer uid is checked.
package control

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/version"
)

// Backend is the lab a Server serves. Its methods are called from many
// connections at once.
type Backend interface {
	// Machines returns every machine's status, sorted by name.
	Machines() []MachineStatus
	// Shell runs o on the machine called name (which is up) until the
	// command ends or ctx does.
	Shell(ctx context.Context, name string, o machine.ShellOptions) (machine.ShellResult, error)
	// Console subscribes to the serial console of the machine called
	// name: Read returns a backlog of recent output and then live bytes
	// until Close; Write types into the guest's serial port.
	Console(name string) (io.ReadWriteCloser, error)
}

// Server serves one lab's control socket.
type Server struct {
	info    LabInfo
	backend Backend
	logf    func(string, ...any)
	path    string
	lock    *lock
	ln      *net.UnixListener

	ctx    context.Context // ends at Close: shells and consoles stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection

	down     chan struct{} // closed when a client asks the lab to stop
	downOnce sync.Once

	closeOnce sync.Once
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	stopping  string // why the lab is stopping (Stopping); "" while it runs
}

// Listen serves backend as the lab called name (CheckName), in this user's
// runtime directory. A lab of that name that is up already is an
// *AlreadyUpError; the files of one that crashed or was killed are
// removed, and logf (nil: silent) says so. info's Name, Pid and Started
// are filled in when zero.
func Listen(name string, info LabInfo, backend Backend, logf func(string, ...any)) (*Server, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	dir, err := RuntimeDir()
	if err != nil {
		return nil, err
	}
	lk, err := acquire(dir, name)
	if err != nil {
		return nil, err
	}
	info.Name = name
	if info.Pid == 0 {
		info.Pid = os.Getpid()
	}
	if info.Started.IsZero() {
		info.Started = time.Now()
	}
	path := sockPath(dir, name)
	if os.Remove(path) == nil {
		// We hold the lock, so the socket's lab is gone.
		noteStale(logf, name)
	}
	if err := lk.write(info); err != nil {
		lk.release()
		return nil, err
	}
	ln, err := listenPrivate(path)
	if err != nil {
		lk.release()
		return nil, fmt.Errorf("serve lab %q: %w", name, err)
	}
	s := &Server{info: info, backend: backend, logf: logf, path: path, lock: lk, ln: ln,
		down: make(chan struct{}), conns: make(map[net.Conn]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// listenPrivate listens on a unix socket only its owner may connect to.
// The socket is made 0600 after it is bound, not born so through the
// umask: the umask is the whole process's, and a directory another
// goroutine made meanwhile would be born 0600 too. In between, the
// runtime directory (0700, checked) keeps others out, and every
// connection's peer is checked anyway.
func listenPrivate(path string) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("make the socket private: %w", err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it, before the lock
	return ln, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Info returns what the server says about its lab.
func (s *Server) Info() LabInfo { return s.info }

// DownRequested is closed when a client asked the lab to stop (vmlab
// down). The lab's owner stops its machines and calls Close; the client
// hears the lab is down when its connection closes.
func (s *Server) DownRequested() <-chan struct{} { return s.down }

// Stopping tells the server that the lab is stopping, and why ("Ctrl-C in
// vmlab up"): a shell whose command ends from now on on a signal (the
// machine's shutdown kills it) or an error answers with a "stopping"
// error that says so, instead of an exit status the user cannot explain.
// Call it before stopping the machines; Close ends the serving.
func (s *Server) Stopping(why string) {
	s.mu.Lock()
	s.stopping = why
	s.mu.Unlock()
}

func (s *Server) stopReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Close stops serving: it ends every connection (shells and consoles
// stop), removes the socket, then releases and removes the lock. It waits
// for the connections' goroutines and is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		os.Remove(s.path)
		s.lock.release()
	})
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// helloTimeout bounds the wait for a client's hello: a client that
// connects and says nothing does not hold a connection for ever.
const helloTimeout = 10 * time.Second

// serve runs one connection: the peer check, the hello, then requests.
func (s *Server) serve(c *net.UnixConn) {
	pc := newConn(c)
	if err := checkPeer(c); err != nil {
		pc.sendError(CodeFailed, err.Error())
		s.note("refused a connection: %v", err)
		return
	}
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	m, err := pc.readMessage()
	c.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		return
	case m.Type != "hello":
		pc.sendError(CodeBadRequest, fmt.Sprintf("the first message must be a hello, not %q", m.Type))
		return
	case m.Version != Version:
		pc.send(Message{Type: "error", Code: CodeVersion, Versions: []int{Version},
			Message: fmt.Sprintf("lab %q speaks control protocol %d, the client %d: use a vmlab of the same version as the lab's", s.info.Name, Version, m.Version)})
		return
	}
	if pc.send(Message{Type: "hello", Version: Version, Server: "vmlab " + version.Short(), Lab: s.info.Name}) != nil {
		return
	}
	for {
		m, err := pc.readMessage()
		if err != nil {
			return
		}
		if !s.request(pc, m) {
			return
		}
	}
}

// request answers one request, and says whether the connection takes
// another: shell and console end it.
func (s *Server) request(pc *conn, m Message) bool {
	switch m.Type {
	case "status":
		st := LabStatus{LabInfo: s.info, Machines: s.backend.Machines()}
		return pc.send(Message{Type: "status", Status: &st}) == nil
	case "down":
		if c := s.info.Command; c != "" && c != "up" {
			pc.sendError(CodeRefused, fmt.Sprintf("lab %s belongs to vmlab %s (pid %d): stop it there (Ctrl-C; Ctrl-D at a REPL prompt)", s.info.Name, c, s.info.Pid))
			return true
		}
		s.note("stopping the lab: a client asked (vmlab down)")
		pc.send(Message{Type: "down"})
		s.downOnce.Do(func() { close(s.down) })
		// The client waits for the connection to close: at Close, once
		// the machines are down.
		<-s.ctx.Done()
		return false
	case "shell":
		s.shell(pc, m)
		return false
	case "console":
		s.console(pc, m)
		return false
	}
	pc.sendError(CodeBadRequest, fmt.Sprintf("unknown request %q (this lab speaks status, down, shell, console)", m.Type))
	return true
}

// machineFor finds the machine a request names, or answers with why not:
// the names declared when there is none by that name, its state and why
// when up says it must be up and is not.
func (s *Server) machineFor(pc *conn, name string, up bool) bool {
	ms := s.backend.Machines()
	i := slices.IndexFunc(ms, func(m MachineStatus) bool { return m.Name == name })
	if i < 0 {
		names := make([]string, len(ms))
		for j, m := range ms {
			names[j] = m.Name
		}
		pc.send(Message{Type: "error", Code: CodeNoMachine, Machines: names,
			Message: fmt.Sprintf("lab %q has no machine %q; its machines: %s", s.info.Name, name, joinNames(names))})
		return false
	}
	if m := ms[i]; up && m.State != machine.StatusUp {
		msg := fmt.Sprintf("machine %s of lab %q is %s", name, s.info.Name, m.State)
		switch m.State {
		case machine.StatusBooting:
			msg += ": try again when vmlab status shows it up"
		case machine.StatusFailed:
			msg += ": " + m.Error + "\n(vmlab console -lab " + s.info.Name + " " + name + " shows its console; restart the lab to boot it again)"
		default:
			msg += ": start it from the lab's test or REPL (start()), or restart the lab"
		}
		pc.send(Message{Type: "error", Code: CodeNotUp, Message: msg})
		return false
	}
	return true
}

func (s *Server) note(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

// checkPeer makes sure the process at the other end runs as our user.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("check the peer: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if credErr != nil {
		return fmt.Errorf("check the peer: %w", credErr)
	}
	return checkUID(int(cred.Uid), int(cred.Pid))
}

// checkUID refuses a peer of another user. A variable so a test can play
// another user without being root.
var checkUID = func(uid, pid int) error {
	if uid != os.Geteuid() {
		return fmt.Errorf("peer pid %d runs as uid %d; only uid %d may use this lab", pid, uid, os.Geteuid())
	}
	return nil
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	out := names[0]
	for _, n := range names[1:] {
		out += ", " + n
	}
	return out
}
