package control

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
)

// conn is one end of a control connection: frames in, frames out. Writes
// are serialized (a shell's stdout, stderr and its exit come from several
// goroutines); reads belong to one goroutine at a time.
type conn struct {
	c   net.Conn
	wmu sync.Mutex
}

func newConn(c net.Conn) *conn { return &conn{c: c} }

func (pc *conn) send(m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode a %s message: %w", m.Type, err)
	}
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	return writeFrame(pc.c, FrameJSON, b)
}

func (pc *conn) sendError(code, msg string) error {
	return pc.send(Message{Type: "error", Code: code, Message: msg})
}

// sendData sends p as frames of typ, maxData bytes at most each. An empty
// p sends one empty frame (EOF on stdin).
func (pc *conn) sendData(typ byte, p []byte) error {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	for {
		n := min(len(p), maxData)
		if err := writeFrame(pc.c, typ, p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// readMessage reads the next frame, which must be JSON.
func (pc *conn) readMessage() (Message, error) {
	typ, payload, err := readFrame(pc.c)
	if err != nil {
		return Message{}, err
	}
	if typ != FrameJSON {
		return Message{}, fmt.Errorf("%w: a %q frame where a JSON message was due", ErrMalformed, typ)
	}
	return decode(payload)
}

// frameWriter is an io.Writer that sends what it is given as data frames.
type frameWriter struct {
	pc  *conn
	typ byte
}

func (w frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := w.pc.sendData(w.typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
