// Package qmp owns the host's conversation with one QEMU process over the QEMU
// Machine Protocol: the greeting and capabilities handshake, commands matched
// to replies by id, and asynchronous events fanned out to subscribers.
//
// Create a Client with NewClient on a connected stream socket (QEMU's
// "-mon chardev=...,mode=control"), call Execute from any number of
// goroutines, Subscribe to events, and Close it when done. The Client notices
// when QEMU goes away: Done is closed, Err says why, and every call returns an
// error wrapping ErrClosed.
//
// The protocol is documented at https://www.qemu.org/docs/master/interop/qmp-spec.html.
// Package qmptest holds a fake server for tests of code that drives QEMU.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// ErrClosed is wrapped by every error caused by the connection ending,
// whether QEMU exited, crashed, sent garbage, or Close was called.
var ErrClosed = errors.New("qmp connection closed")

// Client is a QMP connection to one QEMU process. All methods are safe for
// concurrent use. One reader goroutine, owned by the Client, reads every
// message from QEMU; each Subscription adds a delivery goroutine. Call Close
// even after the connection has ended: it releases subscriptions whose
// events nobody read.
type Client struct {
	conn     net.Conn
	dec      *json.Decoder
	greeting Greeting

	// writeSem serializes writes of whole requests; a channel rather than a
	// mutex so that a writer waiting its turn still honours its context.
	writeSem chan struct{}

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	subs    map[*Subscription]struct{}
	cause   error // first reason to close the connection from our side
	ended   bool  // the reader has stopped; no new subscriptions are fed

	done chan struct{} // closed by the reader when it stops
	err  error         // why the connection ended; written before done closes
}

// NewClient performs the QMP handshake on conn (read the greeting, negotiate
// capabilities) and starts the reader goroutine. ctx bounds the handshake
// only, not the Client's life. NewClient takes ownership of conn: Close closes
// it, and NewClient closes it when the handshake fails.
func NewClient(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{
		conn:     conn,
		dec:      json.NewDecoder(conn),
		writeSem: make(chan struct{}, 1),
		pending:  make(map[uint64]chan reply),
		subs:     make(map[*Subscription]struct{}),
		done:     make(chan struct{}),
	}
	if err := c.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// handshake reads the greeting and runs qmp_capabilities, with blocked reads
// undone by ctx. Until it returns no other goroutine uses the connection.
func (c *Client) handshake(ctx context.Context) error {
	stop := bindDeadline(ctx, c.conn.SetReadDeadline)
	defer stop()

	var g greetingMessage
	if err := c.dec.Decode(&g); err != nil {
		return fmt.Errorf("read greeting: %w", ctxOr(ctx, err))
	}
	if g.QMP == nil {
		return errors.New("read greeting: not a QMP greeting")
	}
	c.greeting = g.greeting()

	if _, err := c.negotiate(ctx); err != nil {
		return fmt.Errorf("negotiate capabilities: %w", err)
	}
	return nil
}

// negotiate sends qmp_capabilities, which leaves QEMU's negotiation mode,
// and reads messages until its reply.
func (c *Client) negotiate(ctx context.Context) (json.RawMessage, error) {
	id := c.newID()
	line, err := encodeRequest("qmp_capabilities", nil, id)
	if err != nil {
		return nil, err
	}
	if err := c.write(ctx, line); err != nil {
		return nil, err
	}
	for {
		var m message
		if err := c.dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("read reply: %w", ctxOr(ctx, err))
		}
		// QEMU sends no events before negotiation ends; anything else
		// without our id is not the reply we wait for.
		if got, ok := m.id(); ok && got == id {
			r := m.reply()
			return r.ret, r.err
		}
	}
}

// Greeting returns what QEMU announced when the connection opened.
func (c *Client) Greeting() Greeting {
	return c.greeting
}

// Done returns a channel that is closed when the connection has ended and
// the reader goroutine has stopped.
func (c *Client) Done() <-chan struct{} {
	return c.done
}

// Err returns nil while the connection is up, and afterwards an error
// wrapping ErrClosed that says why it ended.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close closes the connection, fails pending Execute calls with ErrClosed,
// closes every subscription (events not yet received are discarded) and
// waits for the Client's goroutines to stop. It is idempotent and always
// returns nil.
func (c *Client) Close() error {
	c.abort(ErrClosed)
	<-c.done
	c.closeSubscriptions()
	return nil
}

// abort closes the connection from our side, recording the first cause, so
// that the reader stops and reports it.
func (c *Client) abort(cause error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	c.mu.Unlock()
	c.conn.Close()
}

func (c *Client) newID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

// readLoop is the reader goroutine: it dispatches every message until the
// connection fails, then records why and releases everyone waiting.
func (c *Client) readLoop() {
	for {
		var m message
		if err := c.dec.Decode(&m); err != nil {
			c.finish(fmt.Errorf("read message: %w", err))
			return
		}
		c.dispatch(&m)
	}
}

func (c *Client) dispatch(m *message) {
	if m.Event != "" {
		c.publish(m.event())
		return
	}
	id, ok := m.id()
	if !ok {
		return // not a reply to any request of ours
	}
	c.mu.Lock()
	ch := c.pending[id]
	c.mu.Unlock()
	if ch == nil {
		return // its Execute gave up (context ended); the reply is dropped
	}
	select {
	case ch <- m.reply():
	default: // a duplicate reply; the first one stands
	}
}

// finish runs once, on the reader goroutine, when the connection has ended.
func (c *Client) finish(readErr error) {
	c.conn.Close()
	c.mu.Lock()
	cause := c.cause
	if cause == nil {
		cause = readErr
	}
	if errors.Is(cause, ErrClosed) {
		c.err = cause
	} else {
		c.err = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	c.ended = true
	subs := c.subscriptionsLocked()
	c.mu.Unlock()

	for _, s := range subs {
		s.end()
	}
	close(c.done)
}
