package resultcache

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var timeZero = time.Unix(0, 0)

func sampleEntry(key string) Entry {
	return Entry{Key: key, Test: "minimal.test", Vmlab: "v0.1", Passed: time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC),
		Host: "runner-1", Duration: 4200 * time.Millisecond, Reads: []Read{{Path: "data.txt", SHA256: Bytes([]byte("x"))}}}
}

func TestEntryRoundTrip(t *testing.T) {
	key := Bytes([]byte("key"))
	e := sampleEntry(key)
	got, err := Decode(key, e.Encode())
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.Duration != e.Duration || !got.Passed.Equal(e.Passed) || got.Host != e.Host || len(got.Reads) != 1 || got.Reads[0] != e.Reads[0] {
		t.Errorf("Decode: got %+v, want %+v", got, e)
	}
}

// TestEntryCorrupt: an entry altered in a byte, cut, of another key, of
// another format, or not JSON, is refused.
func TestEntryCorrupt(t *testing.T) {
	key := Bytes([]byte("key"))
	enc := string(sampleEntry(key).Encode())
	tests := []struct{ name, data, key string }{
		{"a byte changed", strings.Replace(enc, "runner-1", "runner-2", 1), key},
		{"cut", enc[:len(enc)/2], key},
		{"another key", enc, Bytes([]byte("other"))},
		{"another format", strings.Replace(enc, `"format":1`, `"format":99`, 1), key},
		{"not JSON", "<html>502 Bad Gateway</html>", key},
		{"no checksum", strings.Replace(enc, `"sum":"`, `"sum":"0`, 1), key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.key, []byte(tt.data))
			if !errors.Is(err, errCorrupt) {
				t.Errorf("Decode: got %v, want a corrupt entry", err)
			}
		})
	}
}
