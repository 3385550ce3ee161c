package agentproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Flow control. Streamed bytes that the receiving end queues (standard
// input and copy-in data in the guest, copy-out data on the host) are sent
// under a window: a sender has at most WindowSize bytes sent and not yet
// acknowledged, and the receiver acknowledges bytes as its consumer reads
// them, in Ack frames (payload: a uint32, big endian, the count of bytes
// read since the last Ack). So a consumer that stops reading (a command
// that ignores its stdin) holds at most WindowSize bytes of its stream in
// memory, and the channel's single reader still never blocks. Command
// output (Stdout, Stderr) is not windowed: the host consumes it as it
// reads the channel.

// WindowSize is the most a stream may have in flight: 1 MiB is 16 chunks,
// ~30 ms of the channel under TCG, so a reading consumer never waits for
// an Ack.
const WindowSize = 1 << 20

// ackEvery batches acknowledgements: one Ack frame per chunk read at most.
const ackEvery = ChunkSize

// ErrWindowClosed is returned by a windowed write after its stream ended.
var ErrWindowClosed = errors.New("stream ended")

// Window is the sending side of one stream's flow control. Its methods are
// safe for concurrent use.
type Window struct {
	mu     sync.Mutex
	cond   sync.Cond
	room   int
	closed bool
}

// NewWindow returns a window with WindowSize bytes of room.
func NewWindow() *Window {
	w := &Window{room: WindowSize}
	w.cond.L = &w.mu
	return w
}

// take waits until n bytes fit and takes them, or returns ErrWindowClosed.
func (w *Window) take(n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.room < n && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return ErrWindowClosed
	}
	w.room -= n
	return nil
}

// Ack gives back room for n bytes the receiver has read.
func (w *Window) Ack(n int) {
	w.mu.Lock()
	w.room += n
	w.cond.Broadcast()
	w.mu.Unlock()
}

// Close ends the window: waiting and later writes fail. It is idempotent.
func (w *Window) Close() {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// WindowedStream is Stream under win: each chunk waits for room first.
func (w *Writer) WindowedStream(t Type, stream uint32, win *Window) io.Writer {
	return &windowedWriter{w: w, typ: t, stream: stream, win: win}
}

type windowedWriter struct {
	w      *Writer
	typ    Type
	stream uint32
	win    *Window
}

func (s *windowedWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), ChunkSize)
		if err := s.win.take(k); err != nil {
			return n, err
		}
		if err := s.w.WriteFrame(s.typ, s.stream, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// AckPayload encodes an Ack frame's payload for n bytes.
func AckPayload(n int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(n))
}

// DecodeAck returns the byte count an Ack frame carries.
func DecodeAck(f Frame) (int, error) {
	if len(f.Payload) != 4 {
		return 0, fmt.Errorf("%w: ack payload of %d bytes, want 4", ErrMalformed, len(f.Payload))
	}
	n := binary.BigEndian.Uint32(f.Payload)
	if n > WindowSize {
		return 0, fmt.Errorf("%w: ack of %d bytes exceeds the window of %d", ErrMalformed, n, WindowSize)
	}
	return int(n), nil
}
