package report

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello\tworld", "hello\tworld"},
		{"colour", "\x1b[0;32m  OK  \x1b[0m] Started", "  OK  ] Started"},
		{"title", "\x1b]0;root@vm\x07$ ", "$ "},
		{"title ended by ST", "\x1b]0;t\x1b\\x", "x"},
		{"carriage return", "line\r", "line"},
		{"C0 and DEL", "a\x00b\x08c\x7f", "abc"},
		{"C1", "a\u009b31mb", "a31mb"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"unicode", "héllo ✓", "héllo ✓"},
		{"XML non-characters", "a\uFFFEb\uFFFFc\uFFFDd", "abc\uFFFDd"},
		{"escape at end", "x\x1b", "x"},
		{"unterminated CSI", "x\x1b[12", "x"},
	}
	for _, tt := range tests {
		if got := clean(tt.in); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestBacktrace(t *testing.T) {
	tests := []struct {
		name, where, msg, want string
	}{
		{"repeated error dropped", "Traceback:\n  a.star:1:2: in f\nError in succeed: boom", "boom", "Traceback:\n  a.star:1:2: in f"},
		{"multi-line error dropped", "Traceback:\n  a.star:1:2: in f\nError: boom\nmore", "boom\nmore", "Traceback:\n  a.star:1:2: in f"},
		{"other last line kept", "Traceback:\n  a.star:1:2: in f\nError: other", "boom", "Traceback:\n  a.star:1:2: in f\nError: other"},
		{"only the error", "Error: boom", "boom", ""},
		{"no where", "", "boom", ""},
	}
	for _, tt := range tests {
		if got := backtrace(tt.where, tt.msg); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCapTail(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"short", "abc\n", 10, "abc\n"},
		{"cut at a line", "one\ntwo\nthree\n", 10, "[8 earlier bytes dropped]\nthree\n"},
		{"no line near", strings.Repeat("x", 500), 10, "[490 earlier bytes dropped]\nxxxxxxxxxx"},
	}
	for _, tt := range tests {
		if got := capTail(tt.in, tt.limit); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestConsoleTail: a machine's tail is its last consoleTail lines, oldest
// first, another machine's lines between them left out.
func TestConsoleTail(t *testing.T) {
	for _, n := range []int{0, 1, consoleTail, consoleTail + 7, 3 * consoleTail} {
		l := consoleLog{limit: consoleLimit}
		for i := range n {
			l.add("vm", fmt.Sprint(i), false)
			l.add("other", "x", false)
		}
		got := l.tail("vm", consoleTail)
		first := max(0, n-consoleTail)
		if len(got) != n-first {
			t.Errorf("after %d lines: got %d kept, want %d", n, len(got), n-first)
			continue
		}
		for i, l := range got {
			if want := fmt.Sprint(first + i); l != want {
				t.Errorf("after %d lines: got line %d = %q, want %q", n, i, l, want)
			}
		}
	}
}

func TestConsoleLog(t *testing.T) {
	l := consoleLog{limit: 100}
	for i := range 1000 {
		l.add("vm", fmt.Sprintf("line %03d", i), false) // 13 bytes with "vm: " and "\n"
	}
	kept := l.kept()
	if len(kept) != 7 || kept[len(kept)-1].Text != "line 999" || kept[0].Text != "line 993" {
		t.Errorf("got %d lines kept, %v; want 7, line 993 to line 999", len(kept), kept)
	}
	if l.size != 91 || l.dropped != 993*13 {
		t.Errorf("got size %d, dropped %d; want 91 and %d", l.size, l.dropped, 993*13)
	}
	if cap(l.lines) > 64 {
		t.Errorf("got capacity %d, want the dropped lines let go", cap(l.lines))
	}
}

// TestConsoleTailKeepsReasons: a machine's tail in a report starts with the
// lines that say why it failed (a panic), then "...", then its last lines,
// however long the stack trace between; another machine's reasons stay out.
func TestConsoleTailKeepsReasons(t *testing.T) {
	tests := []struct {
		name  string
		trace int // lines after the panic
		n     int // lines asked for
		want  []string
	}{
		{"long trace", 30, 3, []string{"Kernel panic - not syncing: x", "...", "frame 27", "frame 28", "frame 29"}},
		{"panic just before the tail", 3, 3, []string{"Kernel panic - not syncing: x", "frame 0", "frame 1", "frame 2"}},
		{"panic inside the tail", 2, 4, []string{"boot", "Kernel panic - not syncing: x", "frame 0", "frame 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := consoleLog{limit: 1 << 20}
			l.add("vm", "boot", false)
			l.add("other", "Kernel panic - not syncing: other", true)
			l.add("vm", "Kernel panic - not syncing: x", true)
			for i := range tt.trace {
				l.add("vm", fmt.Sprintf("frame %d", i), false)
			}
			got := l.tail("vm", tt.n)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTerminalTailKeepsReasons: a machine's tail keeps its panic line ahead
// of its last lines, in the terminal as in the report files (one consoleLog).
func TestTerminalTailKeepsReasons(t *testing.T) {
	l := consoleLog{limit: consoleLimit}
	l.add("vm", "Kernel panic - not syncing: x", true)
	for i := range 2 * consoleTail {
		l.add("vm", fmt.Sprint(i), false)
	}
	got := l.tail("vm", consoleTail)
	if len(got) != consoleTail+2 || got[0] != "Kernel panic - not syncing: x" || got[1] != "..." || got[2] != fmt.Sprint(consoleTail) {
		t.Errorf("got %q, want the panic, ..., then the last %d lines", got, consoleTail)
	}
}
