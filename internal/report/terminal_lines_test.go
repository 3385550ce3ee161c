package report

import (
	"slices"
	"testing"
)

// TestTerminalLines: a text's lines as the terminal report writes them,
// for writers of their own (the REPL): no escape sequence or control
// character of a guest's output reaches the terminal.
func TestTerminalLines(t *testing.T) {
	got := TerminalLines("\x1b]2;HACKED\x07\x1b[31mred\x1b[0m\r\nsecond\u009b2J\n")
	if want := []string{"red", "second2J"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
