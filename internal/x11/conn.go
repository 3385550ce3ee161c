// Package x11 is a small client of the X Window System protocol (core
// protocol version 11, little-endian), written for what the agent asks of
// an X server: is it up (Dial), which windows does it have and what are
// they called (Windows, Names), and tell me when that changes
// (SelectInput, NextEvent). Tests also make windows with it (CreateWindow,
// ChangeProperty, MapWindow).
//
// A Conn is used by one goroutine at a time. Requests are buffered and sent
// when a reply is read (or by Flush), so several requests cost one write;
// each reply, error and event is matched to its request by the 16-bit
// sequence number the server returns. Reads and writes end at the
// context's deadline or cancellation; a Conn whose read or write failed
// stays failed (the byte stream may be cut inside a packet).
package x11

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Window is a window's resource id; Atom an interned name.
type (
	Window uint32
	Atom   uint32
)

// Predefined atoms (the protocol's appendix B): their values are fixed.
const (
	AtomString Atom = 31
	AtomWMName Atom = 39
)

// Screen is one of the server's screens, from the connection setup.
type Screen struct {
	Root          Window
	RootVisual    uint32
	RootDepth     uint8
	Width, Height uint16
}

// Setup is what the server says about itself when a client connects.
type Setup struct {
	Vendor  string
	Release uint32
	Screens []Screen
	ridBase uint32
	ridMask uint32
}

// Auth is an authorization a client sends at connection setup:
// "MIT-MAGIC-COOKIE-1" and its 16-byte cookie. The zero Auth sends none.
type Auth struct {
	Name string
	Data []byte
}

// ConnectError is a failed connection to display Display: its socket
// could not be reached or the server refused the setup (a *SetupError).
type ConnectError struct {
	Display string
	Err     error
}

func (e *ConnectError) Error() string { return "x11: connect " + e.Display + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Refused says whether nothing accepted the connection on the display's
// socket: no socket yet, or one that nothing listens on (yet).
func (e *ConnectError) Refused() bool {
	return errors.Is(e.Err, syscall.ECONNREFUSED) || errors.Is(e.Err, syscall.ENOENT)
}

// Resetting says whether the server closed the connection before it
// answered the setup: what a server does with a client that connects
// while it resets, which it does when its last client leaves (measured:
// 2 connections of 30 made right after the last client left, on Xvfb
// 21.1). The next try gets in once the reset is done, 25-80 ms later. The
// close shows as an end of file or a reset when the setup was sent, and as
// a broken pipe when it closed before the setup was written (seen under
// load).
func (e *ConnectError) Resetting() bool {
	return errors.Is(e.Err, io.EOF) || errors.Is(e.Err, io.ErrUnexpectedEOF) ||
		errors.Is(e.Err, syscall.ECONNRESET) || errors.Is(e.Err, syscall.EPIPE)
}

// SetupError is the server's refusal of a connection setup, with its
// reason ("Authorization required, but no authorization protocol
// specified").
type SetupError struct{ Reason string }

func (e *SetupError) Error() string { return "the server refused the connection: " + e.Reason }

// Error is an X protocol error the server sent for a request.
type Error struct {
	Code  uint8  // BadWindow is 3, BadAtom 5, ...
	Major uint8  // the request's opcode
	Value uint32 // the bad resource id or value
}

var errorNames = map[uint8]string{1: "BadRequest", 2: "BadValue", 3: "BadWindow", 4: "BadPixmap", 5: "BadAtom",
	8: "BadMatch", 9: "BadDrawable", 10: "BadAccess", 11: "BadAlloc", 14: "BadIDChoice", 16: "BadLength", 17: "BadImplementation"}

func (e *Error) Error() string {
	name := errorNames[e.Code]
	if name == "" {
		name = "error " + strconv.Itoa(int(e.Code))
	}
	return fmt.Sprintf("x11: %s for request %d (value %#x)", name, e.Major, e.Value)
}

// Event is an event the server sent: 32 bytes, the first its code.
type Event [32]byte

// Event codes (the protocol's "Events" section).
const (
	CreateNotify   = 16
	DestroyNotify  = 17
	UnmapNotify    = 18
	MapNotify      = 19
	ReparentNotify = 21
	PropertyNotify = 28
)

// Code is the event's code, without the bit that marks a SendEvent.
func (e *Event) Code() uint8 { return e[0] & 0x7f }

// Event masks for SelectInput.
const (
	SubstructureNotifyMask = 1 << 19
	PropertyChangeMask     = 1 << 22
)

// Conn is a connection to an X server.
type Conn struct {
	display string
	nc      net.Conn
	setup   Setup
	wbuf    []byte
	seq     uint16 // the last request's sequence number
	nextID  uint32
	events  []Event
	// voidErr is the first error of a request without a reply since the
	// last Sync (a window destroyed before a SelectInput on it reached
	// the server is one, and is no fault of the caller's).
	voidErr error
	err     error // sticky: the stream is unusable after it
	atoms   atoms // Names' atoms, once interned
}

// SocketPaths are where the server of display n listens: Linux's abstract
// socket first, then the socket file.
func SocketPaths(n int) []string {
	p := "/tmp/.X11-unix/X" + strconv.Itoa(n)
	return []string{"@" + p, p}
}

// DisplayNumber parses a local display name, ":0" or ":0.0" (the screen
// part is accepted and ignored).
func DisplayNumber(display string) (int, error) {
	rest, ok := strings.CutPrefix(display, ":")
	if !ok {
		return 0, fmt.Errorf("x11: display %q: only local displays (\":0\") are supported", display)
	}
	rest, _, _ = strings.Cut(rest, ".")
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("x11: display %q: want \":N\" with N a display number", display)
	}
	return n, nil
}

// Dial connects to local display (":0") and completes the connection
// setup, sending auth when it has a Name. Errors are *ConnectError.
func Dial(ctx context.Context, display string, auth Auth) (*Conn, error) {
	n, err := DisplayNumber(display)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var nc net.Conn
	for _, p := range SocketPaths(n) {
		nc, err = d.DialContext(ctx, "unix", p)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, &ConnectError{display, err}
	}
	c := &Conn{display: display, nc: nc}
	if err := c.handshake(ctx, auth); err != nil {
		nc.Close()
		return nil, &ConnectError{display, err}
	}
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Setup is what the server said at connection setup.
func (c *Conn) Setup() Setup { return c.setup }

func pad(n int) int { return (4 - n%4) % 4 }

// handshake sends the connection setup and reads the server's answer.
func (c *Conn) handshake(ctx context.Context, auth Auth) error {
	b := []byte{'l', 0}
	b = binary.LittleEndian.AppendUint16(b, 11) // protocol major version
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(auth.Name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(auth.Data)))
	b = append(b, 0, 0)
	b = append(b, auth.Name...)
	b = append(b, make([]byte, pad(len(auth.Name)))...)
	b = append(b, auth.Data...)
	b = append(b, make([]byte, pad(len(auth.Data)))...)
	c.wbuf = b
	if err := c.Flush(ctx); err != nil {
		return err
	}
	var head [8]byte
	if err := c.read(ctx, head[:]); err != nil {
		return err
	}
	more := make([]byte, 4*int(binary.LittleEndian.Uint16(head[6:])))
	if err := c.read(ctx, more); err != nil {
		return err
	}
	switch head[0] {
	case 0: // Failed: head[1] is the reason's length
		return &SetupError{strings.TrimSpace(string(more[:min(int(head[1]), len(more))]))}
	case 2: // Authenticate: the reason fills the additional data
		return &SetupError{strings.TrimSpace(strings.TrimRight(string(more), "\x00"))}
	case 1:
		return c.parseSetup(more)
	}
	return fmt.Errorf("connection setup: unknown status %d", head[0])
}

// parseSetup reads the additional data of a successful setup.
func (c *Conn) parseSetup(b []byte) error {
	short := errors.New("connection setup: the server's answer is cut short")
	if len(b) < 32 {
		return short
	}
	le := binary.LittleEndian
	s := Setup{Release: le.Uint32(b[0:]), ridBase: le.Uint32(b[4:]), ridMask: le.Uint32(b[8:])}
	vendorLen, nScreens, nFormats := int(le.Uint16(b[16:])), int(b[20]), int(b[21])
	off := 32 + vendorLen + pad(vendorLen)
	if len(b) < off {
		return short
	}
	s.Vendor = string(b[32 : 32+vendorLen])
	off += 8 * nFormats
	for range nScreens {
		if len(b) < off+40 {
			return short
		}
		sc := b[off:]
		s.Screens = append(s.Screens, Screen{Root: Window(le.Uint32(sc[0:])), Width: le.Uint16(sc[20:]), Height: le.Uint16(sc[22:]),
			RootVisual: le.Uint32(sc[32:]), RootDepth: sc[38]})
		nDepths := int(sc[39])
		off += 40
		for range nDepths {
			if len(b) < off+8 {
				return short
			}
			off += 8 + 24*int(le.Uint16(b[off+2:]))
		}
	}
	if s.ridMask == 0 || len(s.Screens) == 0 {
		return errors.New("connection setup: the server gave no screen or no resource ids")
	}
	c.setup = s
	return nil
}

// NewID allocates a resource id for a window the client creates.
func (c *Conn) NewID() Window {
	c.nextID++
	mask := c.setup.ridMask
	shift := 0
	for mask&1 == 0 {
		mask >>= 1
		shift++
	}
	return Window(c.setup.ridBase | (c.nextID<<shift)&c.setup.ridMask)
}

// deadline ends the connection's reads and writes when ctx ends, until
// the returned function is called. (Not ctx's deadline itself: the
// socket's timer may fire before the context's, and the error would not
// say the context ended.)
func (c *Conn) deadline(ctx context.Context) func() bool {
	c.nc.SetDeadline(time.Time{})
	return context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
}

// fail makes err sticky, as ctx's error when ctx ended.
func (c *Conn) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	if c.err == nil {
		c.err = err
	}
	return err
}

// Flush sends the buffered requests.
func (c *Conn) Flush(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	stop := c.deadline(ctx)
	defer stop()
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	if err != nil {
		return c.fail(ctx, fmt.Errorf("write to %s: %w", c.display, err))
	}
	return nil
}

func (c *Conn) read(ctx context.Context, b []byte) error {
	if c.err != nil {
		return c.err
	}
	stop := c.deadline(ctx)
	defer stop()
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return c.fail(ctx, fmt.Errorf("read from %s: %w", c.display, err))
	}
	return nil
}

// request buffers a request: opcode, the byte after it, and the body
// (padded to 4 bytes). It returns the request's sequence number.
func (c *Conn) request(op, data byte, body []byte) uint16 {
	body = append(body, make([]byte, pad(len(body)))...)
	c.wbuf = append(c.wbuf, op, data)
	c.wbuf = binary.LittleEndian.AppendUint16(c.wbuf, uint16(1+len(body)/4))
	c.wbuf = append(c.wbuf, body...)
	c.seq++
	return c.seq
}

// maxReplyWords bounds a reply's length: 16 MiB, far more than the
// largest vmlab asks for (a window's 64 KiB name, a window's children).
const maxReplyWords = 4 << 20

// packet reads one reply, error or event: its 32 bytes, and a reply's
// additional data.
func (c *Conn) packet(ctx context.Context) ([]byte, error) {
	b := make([]byte, 32)
	if err := c.read(ctx, b); err != nil {
		return nil, err
	}
	if b[0] == 1 || b[0]&0x7f == 35 { // a reply, or a GenericEvent: both have a length
		n := binary.LittleEndian.Uint32(b[4:])
		if n > maxReplyWords {
			return nil, c.fail(ctx, fmt.Errorf("read from %s: a reply of %d bytes, more than vmlab asks for", c.display, 4*uint64(n)))
		}
		more := make([]byte, 4*int(n))
		if err := c.read(ctx, more); err != nil {
			return nil, err
		}
		b = append(b, more...)
	}
	return b, nil
}

// reply flushes and reads until the reply to request seq, keeping the
// events read on the way for NextEvent.
func (c *Conn) reply(ctx context.Context, seq uint16) ([]byte, error) {
	if err := c.Flush(ctx); err != nil {
		return nil, err
	}
	for {
		b, err := c.packet(ctx)
		if err != nil {
			return nil, err
		}
		got := binary.LittleEndian.Uint16(b[2:])
		switch {
		case b[0] == 0:
			xe := &Error{Code: b[1], Major: b[10], Value: binary.LittleEndian.Uint32(b[4:])}
			if got == seq {
				return nil, xe
			}
			if c.voidErr == nil {
				c.voidErr = xe
			}
		case b[0] == 1:
			if got == seq {
				return b, nil
			}
			// The reply to a request whose caller stopped reading it.
		default:
			c.events = append(c.events, Event(b[:32]))
		}
	}
}

// NextEvent returns the next event: one read while waiting for a reply,
// or the next from the server.
func (c *Conn) NextEvent(ctx context.Context) (Event, error) {
	if err := c.Flush(ctx); err != nil {
		return Event{}, err
	}
	for len(c.events) == 0 {
		b, err := c.packet(ctx)
		if err != nil {
			return Event{}, err
		}
		switch b[0] {
		case 0:
			if c.voidErr == nil {
				c.voidErr = &Error{Code: b[1], Major: b[10], Value: binary.LittleEndian.Uint32(b[4:])}
			}
		case 1:
		default:
			c.events = append(c.events, Event(b[:32]))
		}
	}
	e := c.events[0]
	c.events = c.events[1:]
	return e, nil
}

// Pending is how many events were read and not yet returned by NextEvent.
func (c *Conn) Pending() int { return len(c.events) }
