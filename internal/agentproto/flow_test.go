package agentproto

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// frameSink records the frames a Writer sends.
type frameSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (f *frameSink) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *frameSink) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Len()
}

func (f *frameSink) frames(t *testing.T) []Frame {
	t.Helper()
	f.mu.Lock()
	r := NewReader(bytes.NewReader(bytes.Clone(f.buf.Bytes())))
	f.mu.Unlock()
	var out []Frame
	for {
		fr, err := r.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fr)
	}
}

// TestWindow checks that a windowed stream sends at most WindowSize bytes
// ahead of the acknowledgements, goes on as they come, and stops with
// ErrWindowClosed when the stream ends.
func TestWindow(t *testing.T) {
	var sink frameSink
	w := NewWriter(&sink)
	win := NewWindow()
	wrote := make(chan error, 1)
	data := make([]byte, WindowSize+3*ChunkSize)
	go func() {
		_, err := w.WindowedStream(TStdin, 7, win).Write(data)
		wrote <- err
	}()
	// The writer fills the window, then waits: 16 chunks, not 19.
	waitFor(t, func() bool { return sink.Len() >= WindowSize })
	select {
	case err := <-wrote:
		t.Fatalf("the write ended (%v) with no acknowledgement", err)
	default:
	}
	win.Ack(2 * ChunkSize)
	waitFor(t, func() bool { return len(sink.frames(t)) == WindowSize/ChunkSize+2 })
	win.Close()
	if err := <-wrote; !errors.Is(err, ErrWindowClosed) {
		t.Errorf("got %v, want ErrWindowClosed", err)
	}
	if got, want := len(sink.frames(t)), WindowSize/ChunkSize+2; got != want {
		t.Errorf("got %d frames, want %d", got, want)
	}
}

// waitFor waits until cond holds, yielding to the writer between checks,
// for 10 s at most (the writer needs microseconds).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("condition never held")
}

// TestQueueAcks checks that a queue acknowledges every byte read, in
// batches of at most a chunk, and nothing before it is read.
func TestQueueAcks(t *testing.T) {
	var acks []int
	q := NewAckQueue(func(n int) { acks = append(acks, n) })
	for range 4 {
		q.Push(make([]byte, ChunkSize))
	}
	if len(acks) != 0 {
		t.Fatalf("got acks %v before any read", acks)
	}
	q.Close(nil)
	n, err := io.Copy(io.Discard, q)
	total := 0
	for _, a := range acks {
		total += a
		if a > ChunkSize {
			t.Errorf("got an ack of %d bytes, want at most %d", a, ChunkSize)
		}
	}
	if err != nil || n != 4*ChunkSize || total != int(n) {
		t.Errorf("read %d bytes (%v), acknowledged %d in %v; want %d read and acknowledged", n, err, total, acks, 4*ChunkSize)
	}
}

func TestDecodeAck(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    int
		wantErr bool
	}{
		{"chunk", AckPayload(ChunkSize), ChunkSize, false},
		{"short", []byte{1, 2}, 0, true},
		{"over the window", AckPayload(WindowSize + 1), 0, true},
	}
	for _, tt := range tests {
		got, err := DecodeAck(Frame{Type: TAck, Payload: tt.payload})
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: got %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}
