package agentproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
)

func header(magic byte, t Type, stream, n uint32) []byte {
	h := make([]byte, HeaderSize)
	h[0] = magic
	h[1] = byte(t)
	binary.BigEndian.PutUint32(h[2:6], stream)
	binary.BigEndian.PutUint32(h[6:10], n)
	return h
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: THello, Stream: 0, Payload: []byte(`{"version":1}`)},
		{Type: TStdout, Stream: 7, Payload: []byte{0, 0xff, 0xfe, '\n', 0}},
		{Type: TStdinEOF, Stream: 1 << 31},
		{Type: TData, Stream: 3, Payload: bytes.Repeat([]byte{0xAB}, MaxPayload)},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range frames {
		if err := w.WriteFrame(f.Type, f.Stream, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, want := range frames {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.Stream != want.Stream || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("frame %d: got %v/%d/%d bytes, want %v/%d/%d bytes", i, got.Type, got.Stream,
				len(got.Payload), want.Type, want.Stream, len(want.Payload))
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Errorf("after last frame: got %v, want io.EOF", err)
	}
}

func TestFrameMalformed(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"bad magic", header(0x41, TStdout, 1, 0), ErrMalformed},
		{"type zero", header(Magic, 0, 1, 0), ErrMalformed},
		{"unknown type", header(Magic, typeLimit, 1, 0), ErrMalformed},
		{"too long", header(Magic, TData, 1, MaxPayload+1), ErrMalformed},
		{"short header", []byte{Magic, byte(TStdout), 0}, io.ErrUnexpectedEOF},
		{"short payload", append(header(Magic, TStdout, 1, 10), 'a', 'b'), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input)).ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
			if _, err := ReadFrameFrom(bytes.NewReader(tt.input)); !errors.Is(err, tt.want) {
				t.Errorf("ReadFrameFrom: got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
}

// TestReadFrameFrom checks that it reads one frame and not a byte of the
// next, empty payloads included.
func TestReadFrameFrom(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.WriteFrame(TRestore, 0, []byte(`{"unix_nano":1}`))
	w.WriteFrame(TStdinEOF, 7, nil)
	w.WriteFrame(TStdout, 3, []byte("next"))
	for _, want := range []Frame{{Type: TRestore, Payload: []byte(`{"unix_nano":1}`)}, {Type: TStdinEOF, Stream: 7, Payload: []byte{}}} {
		f, err := ReadFrameFrom(&buf)
		if err != nil || f.Type != want.Type || f.Stream != want.Stream || !bytes.Equal(f.Payload, want.Payload) {
			t.Fatalf("got %v %d %q, %v; want %v %d %q", f.Type, f.Stream, f.Payload, err, want.Type, want.Stream, want.Payload)
		}
	}
	if rest := HeaderSize + len("next"); buf.Len() != rest {
		t.Errorf("%d bytes left after two frames, want the third's %d", buf.Len(), rest)
	}
}

func TestWriterRejectsOversizedPayload(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteFrame(TData, 1, make([]byte, MaxPayload+1)); err == nil {
		t.Fatal("got nil error for an oversized payload, want one")
	}
	if err := w.WriteFrame(TData, 1, []byte("ok")); err != nil {
		t.Errorf("writer unusable after a rejected frame: %v", err)
	}
}

// TestWriterConcurrent checks that frames written from many goroutines never
// interleave.
func TestWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 50 {
				w.WriteFrame(TStdout, uint32(g), bytes.Repeat([]byte{byte(g)}, 1000+g))
			}
		})
	}
	wg.Wait()
	r := NewReader(&buf)
	count := 0
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", count, err)
		}
		if len(f.Payload) != 1000+int(f.Stream) || f.Payload[0] != byte(f.Stream) {
			t.Fatalf("frame %d of stream %d is corrupt", count, f.Stream)
		}
		count++
	}
	if count != 16*50 {
		t.Errorf("got %d frames, want %d", count, 16*50)
	}
}

func TestQueue(t *testing.T) {
	q := NewQueue()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(q)
		done <- b
	}()
	q.Push([]byte("hello "))
	q.Push(nil)
	q.Push([]byte("world"))
	q.Close(nil)
	q.Push([]byte("dropped"))
	if got := string(<-done); got != "hello world" {
		t.Errorf("got %q, want %q", got, "hello world")
	}
	boom := errors.New("boom")
	q = NewQueue()
	q.Push([]byte("x"))
	q.Close(boom)
	b, err := io.ReadAll(q)
	if string(b) != "x" || err != boom {
		t.Errorf("got %q, %v; want %q, %v", b, err, "x", boom)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the decoder: it must never panic,
// never return a payload over MaxPayload, and every frame it accepts must
// encode back to the same bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add(append(header(Magic, TStdout, 1, 3), "abc"...))
	f.Add(header(Magic, TStdinEOF, 9, 0))
	f.Add(append(header(Magic, TResize, 2, 4), 0, 24, 0, 80))
	f.Add(append(header(Magic, TSignal, 2, 6), "SIGINT"...))
	f.Add(header(Magic, TData, 1, MaxPayload+1))
	f.Add([]byte{0xA7})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var out bytes.Buffer
		w := NewWriter(&out)
		consumed := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				break
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(fr.Payload))
			}
			if err := w.WriteFrame(fr.Type, fr.Stream, fr.Payload); err != nil {
				t.Fatal(err)
			}
			consumed += HeaderSize + len(fr.Payload)
		}
		if !bytes.Equal(out.Bytes(), data[:consumed]) {
			t.Fatalf("re-encoded frames differ from the input")
		}
	})
}
