package agentproto

import (
	"errors"
	"testing"
)

func TestResizePayload(t *testing.T) {
	for _, s := range [][2]uint16{{24, 80}, {0, 0}, {65535, 1}} {
		rows, cols, err := DecodeResize(Frame{Type: TResize, Payload: ResizePayload(s[0], s[1])})
		if err != nil || rows != s[0] || cols != s[1] {
			t.Errorf("round trip of %dx%d: got %dx%d, %v", s[0], s[1], rows, cols, err)
		}
	}
	for _, p := range [][]byte{nil, {1, 2, 3}, {1, 2, 3, 4, 5}} {
		if _, _, err := DecodeResize(Frame{Type: TResize, Payload: p}); !errors.Is(err, ErrMalformed) {
			t.Errorf("resize payload %v: got %v, want ErrMalformed", p, err)
		}
	}
}

func TestDecodeSignal(t *testing.T) {
	tests := []struct {
		payload string
		ok      bool
	}{
		{"SIGINT", true}, {"SIGWINCH", true}, {"SIGSEGV", false}, {"sigint", false}, {"", false}, {"9", false},
	}
	for _, tt := range tests {
		name, err := DecodeSignal(Frame{Type: TSignal, Payload: []byte(tt.payload)})
		if tt.ok && (err != nil || name != tt.payload) {
			t.Errorf("signal %q: got %q, %v; want it accepted", tt.payload, name, err)
		}
		if !tt.ok && !errors.Is(err, ErrMalformed) {
			t.Errorf("signal %q: got %q, %v; want ErrMalformed", tt.payload, name, err)
		}
	}
}

// FuzzControlFrames feeds arbitrary payloads to the Resize and Signal
// decoders: they never panic, and what they accept encodes back the same.
func FuzzControlFrames(f *testing.F) {
	f.Add([]byte{0, 24, 0, 80})
	f.Add([]byte("SIGINT"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		if rows, cols, err := DecodeResize(Frame{Type: TResize, Payload: p}); err == nil {
			if got := ResizePayload(rows, cols); string(got) != string(p) {
				t.Fatalf("resize %v decoded to %dx%d, encodes to %v", p, rows, cols, got)
			}
		}
		if name, err := DecodeSignal(Frame{Type: TSignal, Payload: p}); err == nil && name != string(p) {
			t.Fatalf("signal %q decoded to %q", p, name)
		}
	})
}
