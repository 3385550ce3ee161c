package machine

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Console stream bounds. The backlog is what a new subscriber sees first:
// 64 KiB is a few screens of a shell or the end of a boot. Each subscriber
// buffers at most 1 MiB that it has not read; beyond that its oldest bytes
// are dropped (and it is told how many), so a stalled reader never holds
// the guest's console back nor grows without bound.
const (
	consoleBacklog   = 64 << 10
	subscriberBuffer = 1 << 20
)

// rawConsole is the serial console as bytes, for subscribers (vmlab
// console): a bounded backlog of recent output, then live bytes. Writes
// never block: they come from QEMU's console reader, which must keep
// draining the guest's serial port.
type rawConsole struct {
	mu   sync.Mutex
	ring []byte // the last consoleBacklog bytes, oldest at next once full
	next int    // where the next byte goes
	full bool   // the ring has wrapped
	subs map[*ConsoleReader]struct{}
}

// write keeps p in the backlog and hands it to every subscriber, in time
// proportional to len(p): a chatty guest writes thousands of lines a second.
func (c *rawConsole) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		c.ring = make([]byte, consoleBacklog)
	}
	keep := p
	if len(keep) > consoleBacklog {
		keep = keep[len(keep)-consoleBacklog:]
	}
	for len(keep) > 0 {
		n := copy(c.ring[c.next:], keep)
		keep = keep[n:]
		c.next += n
		if c.next == len(c.ring) {
			c.next, c.full = 0, true
		}
	}
	for r := range c.subs {
		r.add(p)
	}
}

// backlog returns the backlog's bytes, oldest first.
func (c *rawConsole) backlog() []byte {
	if !c.full {
		return append([]byte(nil), c.ring[:c.next]...)
	}
	return append(append([]byte(nil), c.ring[c.next:]...), c.ring[:c.next]...)
}

// ConsoleReader is one subscriber to a machine's serial console: Read
// returns the backlog, then the bytes as the guest writes them, until
// Close. It is safe to Close from another goroutine while Read blocks.
type ConsoleReader struct {
	c *rawConsole

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	dropped int // bytes dropped since the last Read
	closed  bool
}

// SubscribeConsole returns a reader of the machine's serial console: the
// last 64 KiB it wrote, then what it writes from now on, across reboots.
// The caller must Close it.
func (m *Machine) SubscribeConsole() *ConsoleReader {
	c := &m.console.raw
	r := &ConsoleReader{c: c}
	r.cond = sync.NewCond(&r.mu)
	c.mu.Lock()
	defer c.mu.Unlock()
	r.buf = c.backlog()
	if c.subs == nil {
		c.subs = make(map[*ConsoleReader]struct{})
	}
	c.subs[r] = struct{}{}
	return r
}

func (r *ConsoleReader) add(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.buf = append(r.buf, p...)
	if len(r.buf) > subscriberBuffer {
		// Drop down to three quarters, so a reader that stays behind
		// costs a copy per 256 KiB written, not per write.
		n := len(r.buf) - subscriberBuffer*3/4
		r.buf = append(r.buf[:0:0], r.buf[n:]...)
		r.dropped += n
	}
	r.cond.Broadcast()
}

// Read blocks until console bytes are there, and returns io.EOF after
// Close. When the reader fell more than 1 MiB behind, the bytes it missed
// are replaced by a line saying how many.
func (r *ConsoleReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.buf) == 0 && r.dropped == 0 && !r.closed {
		r.cond.Wait()
	}
	if r.closed {
		return 0, io.EOF
	}
	if r.dropped > 0 {
		note := fmt.Sprintf("\r\n[vmlab: %d console bytes dropped: the reader was too slow]\r\n", r.dropped)
		r.dropped = 0
		r.buf = append([]byte(note), r.buf...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close ends the subscription; a blocked Read returns io.EOF. It is
// idempotent.
func (r *ConsoleReader) Close() error {
	r.c.mu.Lock()
	delete(r.c.subs, r)
	r.c.mu.Unlock()
	r.mu.Lock()
	r.closed = true
	r.buf = nil
	r.cond.Broadcast()
	r.mu.Unlock()
	return nil
}

// ErrConsoleDown says a console write found no QEMU to take it.
var ErrConsoleDown = errors.New("the machine is not running: nothing reads its serial console")

// WriteConsole writes p to the machine's serial port, as typed on its
// console (the guest reads it from ttyS0). It fails with ErrConsoleDown when
// the machine is not running, and when the guest has not taken the bytes
// within 5 s (nothing in the guest reads ttyS0 and QEMU's buffer is full).
func (m *Machine) WriteConsole(p []byte) (int, error) {
	m.mu.Lock()
	proc := m.proc
	m.mu.Unlock()
	if proc == nil || isDone(proc) {
		return 0, fmt.Errorf("%s: %w", m.cfg.Name, ErrConsoleDown)
	}
	n, err := proc.WriteConsole(p)
	if err != nil {
		return n, fmt.Errorf("%s: %w", m.cfg.Name, err)
	}
	return n, nil
}
