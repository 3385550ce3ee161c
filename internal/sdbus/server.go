package sdbus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
)

// Serve is the server end of a connection, as a systemd manager is: it
// accepts SASL EXTERNAL (for any uid), then hands each message to handle,
// in order, until c fails or closes. send writes a message with the next
// serial; it may be called from any goroutine, also after handle returns.
// It is for fakes of systemd in tests (sdbustest).
func Serve(c net.Conn, handle func(m *Message, send func(*Message) error)) error {
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("serve: %w", noEOF(err))
	}
	if !strings.HasPrefix(line, "\x00AUTH EXTERNAL ") {
		io.WriteString(c, "REJECTED EXTERNAL\r\n")
		return fmt.Errorf("serve: unexpected %q", line)
	}
	if _, err := io.WriteString(c, "OK 0123456789abcdef0123456789abcdef\r\n"); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "BEGIN\r\n" {
		return fmt.Errorf("serve: got %q (%v), want BEGIN", line, err)
	}
	var mu sync.Mutex
	serial := uint32(0)
	send := func(m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		serial++
		m.Serial = serial
		b, err := m.marshal()
		if err != nil {
			return err
		}
		_, err = c.Write(b)
		return err
	}
	for {
		m, err := readMessage(r)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		handle(m, send)
	}
}

// Reply is the method return for call, carrying body as sig.
func Reply(call *Message, sig Signature, body ...any) *Message {
	return &Message{Type: TypeMethodReturn, ReplySerial: call.Serial, Signature: sig, Body: body}
}

// ErrorReply is the error reply for call.
func ErrorReply(call *Message, name, text string) *Message {
	return &Message{Type: TypeError, ReplySerial: call.Serial, ErrorName: name, Signature: "s", Body: []any{text}}
}
