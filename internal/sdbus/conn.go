// Package sdbus is a small D-Bus client for systemd's private sockets: the
// system manager's /run/systemd/private (SystemSocket) and a user manager's
// /run/user/UID/systemd/private (UserSocket). It owns the connection (SASL
// EXTERNAL authentication, method calls and their replies, signals) and the
// wire format systemd's Manager, Unit and Properties interfaces need; the
// agent uses it to wait for units event by event (internal/agent's
// unitwait.go) without a D-Bus library or a bus daemon (dbus.service takes
// ~4.7 s to start in a guest under TCG; the private socket is there as soon
// as systemd is).
//
// There is no bus here: no Hello, no names, no match rules. systemd sends
// every signal to each private connection, unasked (Manager.Subscribe is
// only needed on the bus), so a Conn's signals are all of systemd's.
package sdbus

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SystemSocket is the system manager's private socket.
const SystemSocket = "/run/systemd/private"

// UserSocket is the private socket of the manager of the user whose id is
// uid (user@UID.service), once it runs.
func UserSocket(uid int) string { return fmt.Sprintf("/run/user/%d/systemd/private", uid) }

// Error is an error reply: a D-Bus error name and its message.
type Error struct {
	Name    string // "org.freedesktop.systemd1.NoSuchUnit"
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// ErrClosed is the error of calls on a Conn that is closed, or whose peer
// closed it.
var ErrClosed = errors.New("connection closed")

// Conn is a connection to a systemd manager. Its methods may be called from
// several goroutines. A goroutine owned by the Conn reads the socket until
// Close, handing each reply to its call and each signal to the channels
// given to Notify.
type Conn struct {
	c net.Conn

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	serial  uint32
	pending map[uint32]chan *Message
	notify  []notification
	err     error // why the reader ended, set before done is closed

	done      chan struct{} // closed when the reader ends
	closeOnce sync.Once
}

type notification struct {
	ch    chan<- *Message
	match func(*Message) bool
}

// Dial connects to the manager listening on the unix socket at path (see
// SystemSocket and UserSocket) and authenticates as the process's user.
// ctx bounds the connection and the authentication.
func Dial(ctx context.Context, path string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd at %s: %w", path, err)
	}
	conn, err := NewConn(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd at %s: %w", path, err)
	}
	return conn, nil
}

// NewConn authenticates on c, an open connection to a D-Bus server, and
// returns the Conn that owns it from then on. ctx bounds the
// authentication; on failure c is closed.
func NewConn(ctx context.Context, c net.Conn) (*Conn, error) {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	r, err := authenticate(c)
	if !stop() || err != nil {
		c.Close()
		return nil, cmpErr(ctx.Err(), err)
	}
	conn := &Conn{c: c, pending: map[uint32]chan *Message{}, done: make(chan struct{}), serial: 1}
	go conn.read(r)
	return conn, nil
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// authenticate runs SASL EXTERNAL: the server knows the peer's uid from
// the socket (SO_PEERCRED) and checks it is the one claimed. It leaves the
// first message written: see the Ping below.
func authenticate(c net.Conn) (*bufio.Reader, error) {
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if _, err := io.WriteString(c, "\x00AUTH EXTERNAL "+uid+"\r\n"); err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", noEOF(err))
	}
	if !strings.HasPrefix(line, "OK ") {
		return nil, fmt.Errorf("authenticate as uid %d: server answered %q", os.Getuid(), strings.TrimSpace(line))
	}
	// systemd 252 (sd-bus) leaves a message that arrives in the same read
	// as BEGIN unprocessed until more bytes come: the spike saw the first
	// call of a connection stall 3 s, until its read deadline. So BEGIN
	// goes out together with a Ping that wants no reply: it is the message
	// that may wait, and the first real call, a later write, wakes the
	// server for both. Serial 1 is the Ping's; calls start at 2.
	ping := &Message{Type: TypeMethodCall, Flags: FlagNoReplyExpected, Serial: 1,
		Path: "/org/freedesktop/systemd1", Interface: "org.freedesktop.DBus.Peer", Member: "Ping"}
	b, err := ping.marshal()
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append([]byte("BEGIN\r\n"), b...)); err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return r, nil
}

// read hands incoming messages out until the connection fails or closes.
// It closes the socket when it ends, so that a connection that broke (a
// malformed message) does not stay open with systemd queueing signals on
// it that nobody reads.
func (c *Conn) read(r *bufio.Reader) {
	var err error
	for {
		var m *Message
		if m, err = readMessage(r); err != nil {
			break
		}
		c.dispatch(m)
	}
	c.mu.Lock()
	// A peer that closes with a request of ours unread in its socket ends
	// the connection with ECONNRESET rather than an EOF: closed all the
	// same (systemd's daemon-reexec, TestPeerClosesUnread).
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		err = ErrClosed
	}
	c.err = err
	c.mu.Unlock()
	c.closeOnce.Do(func() { c.c.Close() })
	close(c.done)
}

func (c *Conn) dispatch(m *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.Type {
	case TypeMethodReturn, TypeError:
		if ch := c.pending[m.ReplySerial]; ch != nil {
			delete(c.pending, m.ReplySerial)
			ch <- m // buffered: never blocks
		}
	case TypeSignal:
		for _, n := range c.notify {
			if n.match == nil || n.match(m) {
				select {
				case n.ch <- m:
				default:
				}
			}
		}
	}
	// Method calls from the peer: systemd makes none on a private
	// connection.
}

// Notify makes the Conn send the signals that match accepts (all of them
// when match is nil) to ch. It does not block: a signal that does not fit
// in ch is dropped, so a channel with room for one works as a "something
// changed" flag for a caller that reads the state it cares about after
// each receive. match runs on the Conn's reading goroutine: it must be
// quick and must not call the Conn.
func (c *Conn) Notify(ch chan<- *Message, match func(*Message) bool) {
	c.mu.Lock()
	c.notify = append(c.notify, notification{ch, match})
	c.mu.Unlock()
}

// StopNotify makes the Conn stop sending signals to ch; once it returns,
// none is sent there.
func (c *Conn) StopNotify(ch chan<- *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notify = slices.DeleteFunc(c.notify, func(n notification) bool { return n.ch == ch })
}

// Call calls method ("org.freedesktop.systemd1.Manager.LoadUnit": the
// interface, a dot, the member) on the object at path with args encoded as
// sig, and returns the reply's values. An error reply is an *Error. ctx
// bounds the wait for the reply.
func (c *Conn) Call(ctx context.Context, path ObjectPath, method, sig string, args ...any) ([]any, error) {
	dot := strings.LastIndexByte(method, '.')
	if dot < 0 {
		return nil, fmt.Errorf("call %s: method is not INTERFACE.MEMBER", method)
	}
	m := &Message{Type: TypeMethodCall, Path: path, Interface: method[:dot], Member: method[dot+1:],
		Signature: Signature(sig), Body: args}
	reply := make(chan *Message, 1)
	c.mu.Lock()
	c.serial++
	m.Serial = c.serial
	c.pending[m.Serial] = reply
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, m.Serial)
		c.mu.Unlock()
	}
	if err := c.write(ctx, m); err != nil {
		forget()
		return nil, fmt.Errorf("call %s: %w", method, err)
	}
	select {
	case r := <-reply:
		if r.Type == TypeError {
			return nil, replyError(r)
		}
		return r.Body, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("call %s: %w", method, ctx.Err())
	case <-c.done:
		forget()
		return nil, fmt.Errorf("call %s: %w", method, c.readErr())
	}
}

func replyError(r *Message) error {
	e := &Error{Name: r.ErrorName}
	if len(r.Body) > 0 {
		e.Message, _ = r.Body[0].(string)
	}
	return e
}

func (c *Conn) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// write sends m by ctx's deadline, or until ctx is canceled. A ctx that
// ends before a byte is sent leaves the connection as it was: the call
// fails with ctx's error, the other calls go on. A write that sent part of
// the message leaves the stream unframed, and one that fails otherwise
// says the socket is broken: the connection is closed then.
func (c *Conn) write(ctx context.Context, m *Message) error {
	b, err := m.marshal()
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	c.c.SetWriteDeadline(deadline)
	// A cancel (which has no deadline) stops a write blocked on a peer
	// that does not read: a deadline in the past ends it.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.c.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	n, err := c.c.Write(b)
	if !stop() {
		<-fired // the next write sets its own deadline after this one's
	}
	switch {
	case err == nil:
		return nil
	case n == 0 && ctx.Err() != nil:
		return ctx.Err()
	}
	// Half a message, or a socket that fails.
	c.closeOnce.Do(func() { c.c.Close() })
	return fmt.Errorf("%w (%d of %d bytes written: %w)", ErrClosed, n, len(b), cmpErr(ctx.Err(), err))
}

// Done is closed when the connection has ended: closed by Close or by the
// peer, or broken.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the connection and waits for its reading goroutine to end.
// Calls in progress return ErrClosed. Close may be called more than once.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.c.Close() })
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
