package attach

import (
	"io"
	"strings"
	"testing"
)

func TestConsoleEscape(t *testing.T) {
	for _, tc := range []struct {
		name, keys, want string
		left             bool
	}{
		{"plain keys", "ls\r", "ls\r", false},
		{"escape then q leaves", "ab\x1dqcd", "ab", true},
		{"escape twice sends one", "a\x1d\x1db", "a\x1db", false},
		{"escape then another key sends both", "\x1dx", "\x1dx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			left := false
			r := NewEscapeReader(strings.NewReader(tc.keys), func() { left = true })
			got, _ := io.ReadAll(r)
			if string(got) != tc.want || left != tc.left {
				t.Errorf("keys %q: got %q (left %v), want %q (left %v)", tc.keys, got, left, tc.want, tc.left)
			}
		})
	}
}
