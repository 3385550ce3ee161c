package agentproto

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// TTY is the terminal a command runs on (Exec.TTY).
type TTY struct {
	// Term is the command's TERM ("xterm-256color"); empty is "vt100".
	Term string `json:"term,omitempty"`
	// Rows and Cols are the first window size; zero is 24x80.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// ResizePayload encodes a Resize frame's payload: rows then columns, each a
// uint16, big endian.
func ResizePayload(rows, cols uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, rows), cols)
}

// DecodeResize returns the size a Resize frame carries.
func DecodeResize(f Frame) (rows, cols uint16, err error) {
	if len(f.Payload) != 4 {
		return 0, 0, fmt.Errorf("%w: resize payload of %d bytes, want 4", ErrMalformed, len(f.Payload))
	}
	return binary.BigEndian.Uint16(f.Payload), binary.BigEndian.Uint16(f.Payload[2:]), nil
}

// Signals are the signals a Signal frame may carry, by name: what a user
// sends a command from the host (Ctrl-C, Ctrl-\, Ctrl-Z, a closed terminal,
// kill), nothing that only the kernel should send.
var Signals = []string{"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGCONT",
	"SIGKILL", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// DecodeSignal returns the signal name a Signal frame carries. A name not
// in Signals is ErrMalformed: the two ends disagree about the protocol.
func DecodeSignal(f Frame) (string, error) {
	name := string(f.Payload)
	if !slices.Contains(Signals, name) {
		return "", fmt.Errorf("%w: signal %.20q is not one of %v", ErrMalformed, name, Signals)
	}
	return name, nil
}
