package control

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadFrameMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"unknown type", []byte{'X', 0, 0, 0, 0}},
		{"oversized", []byte{FrameJSON, 0, 0x10, 0, 1}},
		{"short payload", []byte{FrameStdout, 0, 0, 0, 5, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := readFrame(bytes.NewReader(tc.in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
	if _, _, err := readFrame(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("no bytes at all: got %v, want io.EOF (the peer hung up between frames)", err)
	}
	if _, err := decode([]byte(`{"version":1}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a message without a type: got %v, want ErrMalformed", err)
	}
}

// FuzzReadFrame: any bytes either decode to frames that encode back to
// the same bytes, or fail; never a panic or an allocation past MaxPayload.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, FrameJSON, []byte(`{"type":"hello","version":1}`))
	writeFrame(&b, FrameStdin, nil)
	f.Add(b.Bytes())
	f.Add([]byte{FrameStdout, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var out bytes.Buffer
		for {
			typ, payload, err := readFrame(r)
			if err != nil {
				return
			}
			if len(payload) > MaxPayload {
				t.Fatalf("a %d-byte payload", len(payload))
			}
			writeFrame(&out, typ, payload)
			if !bytes.HasPrefix(in, out.Bytes()) {
				t.Fatalf("frames re-encode to %x, not a prefix of %x", out.Bytes(), in)
			}
			if typ == FrameJSON {
				decode(payload)
			}
		}
	})
}
