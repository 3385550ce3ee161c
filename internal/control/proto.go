package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the control protocol's version (docs/control-protocol.md). A
// change that an old client or server would misread gets a new number.
const Version = 1

// Frame types. Every message on a connection is a frame: a 1-byte type,
// a 4-byte big-endian length, then that many bytes of payload.
const (
	FrameJSON   byte = 'J' // one JSON object (Message)
	FrameStdin  byte = '0' // client to server: input bytes; empty is EOF
	FrameStdout byte = '1' // server to client: output bytes
	FrameStderr byte = '2' // server to client: error output bytes
)

// MaxPayload bounds a frame's payload; a larger length ends the connection.
const MaxPayload = 1 << 20

// maxData is the most bytes a data frame carries: a shell's output is
// sent as it comes, in frames of up to 32 KiB.
const maxData = 32 << 10

// ErrMalformed says a peer sent a frame that does not follow the protocol.
var ErrMalformed = errors.New("malformed control frame")

// Message is every JSON frame: Type says which, and the other fields are
// those of that type (docs/control-protocol.md lists them).
type Message struct {
	Type string `json:"type"`

	// hello: the client's version, and the server's answer.
	Version int    `json:"version,omitempty"`
	Server  string `json:"server,omitempty"` // "vmlab VERSION"
	Lab     string `json:"lab,omitempty"`

	// shell and console: which machine.
	Machine string `json:"machine,omitempty"`
	// shell: what to run.
	Command []string          `json:"command,omitempty"`
	User    string            `json:"user,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	TTY     bool              `json:"tty,omitempty"`
	// shell (first size), resize.
	Rows int `json:"rows,omitempty"`
	Cols int `json:"cols,omitempty"`
	// signal.
	Signal string `json:"signal,omitempty"`
	// exit: how the shell's command ended (ExitSignal "" unless a signal
	// killed it).
	ExitStatus *int   `json:"exit_status,omitempty"`
	ExitSignal string `json:"exit_signal,omitempty"`

	// status: the lab.
	Status *LabStatus `json:"status,omitempty"`

	// error.
	Code     string   `json:"code,omitempty"`
	Message  string   `json:"message,omitempty"`
	Versions []int    `json:"versions,omitempty"` // code "version": what the server speaks
	Machines []string `json:"machines,omitempty"` // code "no-machine": the declared ones
}

// Error codes of an "error" message.
const (
	CodeVersion    = "version"     // the server does not speak the client's version
	CodeBadRequest = "bad-request" // an unknown type, a missing field
	CodeNoMachine  = "no-machine"  // the lab has no machine of that name
	CodeNotUp      = "not-up"      // the machine is not running
	CodeFailed     = "failed"      // the operation failed (the message says why)
	CodeRefused    = "refused"     // down: the lab is a test's or a REPL's, stopped where it runs
	CodeStopping   = "stopping"    // shell: the lab's stop ended the command
)

// Error is an "error" message as a Go error.
type Error struct {
	Code     string
	Message  string
	Machines []string
}

func (e *Error) Error() string { return e.Message }

// writeFrame writes one frame; it is not safe for concurrent use (conn
// serializes writers).
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("write control frame: %d bytes, more than %d", len(payload), MaxPayload)
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame. An unknown type or an oversized length is
// ErrMalformed.
func readFrame(r io.Reader) (typ byte, payload []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	typ, n := h[0], binary.BigEndian.Uint32(h[1:])
	switch typ {
	case FrameJSON, FrameStdin, FrameStdout, FrameStderr:
	default:
		return 0, nil, fmt.Errorf("%w: unknown type %q", ErrMalformed, typ)
	}
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, n, MaxPayload)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("%w: short payload: %v", ErrMalformed, err)
	}
	return typ, payload, nil
}

// decode parses a JSON frame's payload.
func decode(payload []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.Type == "" {
		return m, fmt.Errorf("%w: a JSON message without a type", ErrMalformed)
	}
	return m, nil
}
