// Package agentproto owns the wire format between the host driver and the guest
// agent: frames on the virtio-serial channel, the messages they carry, and the
// byte queue both ends use so that one slow stream never stalls the others.
//
// A frame is a 10-byte header followed by a payload:
//
//	offset 0  magic   0xA7
//	offset 1  type    one of the Type constants
//	offset 2  stream  uint32, big endian: the request the frame belongs to (0: none)
//	offset 6  length  uint32, big endian: payload length, at most MaxPayload
//
// Many requests run at once on one channel; each has its own stream number,
// chosen by the host. A stream starts with a Request frame and ends with a
// Result frame. Stdin and Data frames are flow-controlled (see Window).
// The channel carries no other framing, so a malformed header
// means the two ends have lost sync: the reader reports it and the channel is
// closed (there is no way to find the next frame boundary reliably).
//
// What flows on a stream between its Request and its Result depends on the
// request's op:
//
//	exec      host: Stdin frames then StdinEOF (when Exec.Stdin), Resize
//	          (with Exec.TTY) and Signal at any time; guest: Stdout, Stderr
//	          (windowed when Exec.OutputWindow: the host Acks them)
//	copy-in   host: a tar stream in Data frames, then DataEOF
//	copy-out  guest: a tar stream in Data frames, then DataEOF
//	setup     host: the contents of Setup.Files, concatenated in order, in
//	          Data frames, then DataEOF (also when there are no files)
//	others    nothing
//
// The host may send Cancel at any time to stop the stream's work; every
// stream ends with exactly one Result from the guest.
//
// Outside any stream (stream 0) the guest sends Hello once, first, and
// then a Notice whenever something happens that the host did not ask
// about but must record, such as a declared service exiting (notice.go).
package agentproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Magic is the first byte of every frame. A wrong byte means garbage on the
// channel, such as kernel messages leaking onto the port.
const Magic = 0xA7

// HeaderSize is the length of a frame header in bytes.
const HeaderSize = 10

// MaxPayload bounds a frame's payload so a corrupt length can never make a
// reader allocate more than this.
const MaxPayload = 1 << 20

// ChunkSize is the payload size senders use for streamed bytes (stdout, file
// data). 64 KiB matches the Linux pipe buffer, so one read fills one frame.
const ChunkSize = 64 << 10

// Type says what a frame carries.
type Type uint8

// Frame types. Host→guest: Request, Cancel, Stdin, StdinEOF, Data, DataEOF,
// Ack (for copy-out Data and windowed output), Resize, Signal. Guest→host:
// Hello, Result, Stdout, Stderr, Data, DataEOF, Ack (for Stdin and copy-in
// Data), Notice. At a snapshot boot (snapshot.go) the guest sends Snapshot
// first and the host answers Restore, both on stream 0, before Hello.
const (
	THello    Type = 1 // JSON Hello, stream 0, once when the agent is ready
	TRequest  Type = 2 // JSON Request, opens a stream
	TResult   Type = 3 // JSON Result, closes a stream
	TCancel   Type = 4 // empty: stop the stream's work now
	TStdin    Type = 5 // bytes for the command's standard input
	TStdinEOF Type = 6 // empty: standard input is closed
	TStdout   Type = 7 // bytes the command wrote to standard output
	TStderr   Type = 8 // bytes the command wrote to standard error
	TData     Type = 9 // bytes of a file copy (a tar stream)
	TDataEOF  Type = 10
	TAck      Type = 11 // uint32: bytes of a windowed stream read (flow.go)
	TResize   Type = 12 // two uint16, rows and columns: the terminal's new size (tty.go)
	TSignal   Type = 13 // a signal's name, "SIGINT": send it to the command (tty.go)
	TNotice   Type = 14 // JSON Notice, stream 0: what happened in the guest unasked (notice.go)
	TSnapshot Type = 15 // JSON SnapshotPoint, stream 0: the agent waits at the snapshot point (snapshot.go)
	TRestore  Type = 16 // JSON Restore, stream 0: the machine's configuration, sent to an agent at the snapshot point
	typeLimit Type = 17
)

var typeNames = [...]string{"", "hello", "request", "result", "cancel", "stdin",
	"stdin-eof", "stdout", "stderr", "data", "data-eof", "ack", "resize", "signal", "notice",
	"snapshot", "restore"}

func (t Type) String() string {
	if t > 0 && t < typeLimit {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Frame is one decoded frame. Payload is owned by the receiver.
type Frame struct {
	Type    Type
	Stream  uint32
	Payload []byte
}

// ErrMalformed is wrapped by every error about a frame that breaks the format.
var ErrMalformed = errors.New("malformed frame")

// Reader decodes frames from a byte stream. It is not safe for concurrent use;
// each channel has one reading goroutine.
type Reader struct {
	r   *bufio.Reader
	hdr [HeaderSize]byte
}

// NewReader returns a Reader that buffers r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 128<<10)}
}

// ReadFrame returns the next frame. It returns io.EOF only at a clean frame
// boundary; a stream that ends inside a frame is io.ErrUnexpectedEOF.
func (r *Reader) ReadFrame() (Frame, error) {
	return readFrame(r.r, r.hdr[:])
}

// ReadFrameFrom reads one frame from r without reading past it (a
// Reader buffers ahead): for a frame before a stream that another Reader
// then reads, as the snapshot point's Restore before serve's requests.
func ReadFrameFrom(r io.Reader) (Frame, error) {
	var hdr [HeaderSize]byte
	return readFrame(r, hdr[:])
}

// readFrame reads a frame's header into hdr, then its payload.
func readFrame(r io.Reader, hdr []byte) (Frame, error) {
	if _, err := io.ReadFull(r, hdr); err != nil {
		return Frame{}, err
	}
	f, n, err := parseHeader(hdr)
	if err != nil {
		return Frame{}, err
	}
	if n > 0 {
		f.Payload = make([]byte, n)
		if _, err := io.ReadFull(r, f.Payload); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, fmt.Errorf("read %v payload: %w", f.Type, err)
		}
	}
	return f, nil
}

func parseHeader(h []byte) (Frame, uint32, error) {
	if h[0] != Magic {
		return Frame{}, 0, fmt.Errorf("%w: bad magic byte %#02x", ErrMalformed, h[0])
	}
	t := Type(h[1])
	if t == 0 || t >= typeLimit {
		return Frame{}, 0, fmt.Errorf("%w: unknown type %d", ErrMalformed, h[1])
	}
	n := binary.BigEndian.Uint32(h[6:10])
	if n > MaxPayload {
		return Frame{}, 0, fmt.Errorf("%w: %v payload of %d bytes exceeds %d", ErrMalformed, t, n, MaxPayload)
	}
	return Frame{Type: t, Stream: binary.BigEndian.Uint32(h[2:6])}, n, nil
}

// Writer encodes frames. It is safe for concurrent use: each frame is written
// whole, under a lock, and flushed before WriteFrame returns.
type Writer struct {
	mu  sync.Mutex
	w   *bufio.Writer
	hdr [HeaderSize]byte
	err error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, HeaderSize+ChunkSize)}
}

// WriteFrame writes one frame. After a write error every later call returns
// the same error: a partly written frame has broken the channel.
func (w *Writer) WriteFrame(t Type, stream uint32, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("write %v frame: payload of %d bytes exceeds %d", t, len(payload), MaxPayload)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.hdr[0] = Magic
	w.hdr[1] = byte(t)
	binary.BigEndian.PutUint32(w.hdr[2:6], stream)
	binary.BigEndian.PutUint32(w.hdr[6:10], uint32(len(payload)))
	w.w.Write(w.hdr[:])
	w.w.Write(payload)
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("write %v frame: %w", t, err)
		return w.err
	}
	return nil
}

// Stream returns an io.Writer that sends what is written to it as frames of
// type t on stream, at most ChunkSize bytes each.
func (w *Writer) Stream(t Type, stream uint32) io.Writer {
	return &streamWriter{w, t, stream}
}

type streamWriter struct {
	w      *Writer
	typ    Type
	stream uint32
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), ChunkSize)
		if err := s.w.WriteFrame(s.typ, s.stream, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}
