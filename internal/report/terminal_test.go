package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func ExampleNewTerminal() {
	sink := NewTerminal(os.Stdout, TerminalOptions{})
	emitAll(sink, sampleRun("/out"))
	// Output:
	// RUN  test_pass
	//   vm: booted in 2.50s
	//   PASS hostname (0.03s)
	//   done
	// PASS test_pass (3.21s)
	// RUN  test_fail
	//   RUN  a step
	//     vm: about to run
	//     vm$ echo about to fail; echo oops >&2; exit 5 (exit 5, 0.03s)
	//   FAIL a step (0.05s)
	//     error: vm: command "echo about to fail; echo oops >&2; exit 5" failed with exit status 5
	//     at:
	//       Traceback (most recent call last):
	//         fail.star:4:12: in test_fail
	//         <builtin>: in subtest
	//         fail.star:4:48: in lambda
	//     stdout:
	//       <script>alert(1)</script>
	//     stderr:
	//       oops
	//     last 20 console lines of vm:
	//       vm: boot line 6
	//       vm: boot line 7
	//       vm: boot line 8
	//       vm: boot line 9
	//       vm: boot line 10
	//       vm: boot line 11
	//       vm: boot line 12
	//       vm: boot line 13
	//       vm: boot line 14
	//       vm: boot line 15
	//       vm: boot line 16
	//       vm: boot line 17
	//       vm: boot line 18
	//       vm: boot line 19
	//       vm: boot line 20
	//       vm: boot line 21
	//       vm: boot line 22
	//       vm: boot line 23
	//       vm: boot line 24
	//       vm: boot line 25
	// FAIL test_fail (3.40s)
	// 1 passed, 1 failed
}

func TestTerminal(t *testing.T) {
	sample := sampleRun("/out")
	tests := []struct {
		name    string
		opts    TerminalOptions
		events  []Event
		want    []string
		notWant []string
	}{{
		name:    "quiet shows failed commands and boots only",
		events:  sample,
		want:    []string{"    vm$ echo about to fail", "  vm: booted in 2.50s\n"},
		notWant: []string{"vm$ hostname", "Welcome", "capture:", "vm: boot line 5\n"},
	}, {
		name:    "a progress block replaces the boot lines",
		opts:    TerminalOptions{Progress: true},
		events:  sample,
		notWant: []string{"booted"},
	}, {
		name:   "verbose with a progress block shows the boot lines too",
		opts:   TerminalOptions{Progress: true, Verbose: true},
		events: sample,
		want:   []string{"  vm: booted in 2.50s\n"},
	}, {
		name:   "verbose shows commands with their output, boots, captures, consoles",
		opts:   TerminalOptions{Verbose: true},
		events: sample,
		want: []string{
			"  RUN  hostname\n    vm$ hostname (exit 0, 0.02s)\n      stdout:\n        vm\n  PASS hostname (0.03s)\n",
			"  vm: Welcome to NixOS!\n",
			"  vm: booted in 2.50s\n",
			"  capture: /out/test_pass/vlan1.pcap\n",
			"  vm: boot line 1\n",
		},
	}, {
		name: "verbose hides the console lines serial_stdout_off() made quiet",
		opts: TerminalOptions{Verbose: true},
		events: []Event{
			{Kind: TestStart, Test: "t"},
			{Kind: Console, Test: "t", Machine: "vm", Text: "hidden line", Quiet: true},
			{Kind: Console, Test: "t", Machine: "vm", Text: "shown line"},
			{Kind: TestEnd, Test: "t", Passed: true},
		},
		want:    []string{"  vm: shown line\n"},
		notWant: []string{"hidden line"},
	}, {
		name:    "no colour means no escapes, not even the guest's",
		opts:    TerminalOptions{Verbose: true},
		events:  sample,
		notWant: []string{"\x1b", "\r"},
	}, {
		name:   "colour",
		opts:   TerminalOptions{Color: true},
		events: sample,
		want:   []string{"\x1b[32mPASS\x1b[0m test_pass (3.21s)\n", "\x1b[31mFAIL\x1b[0m test_fail (3.40s)\n", "\n1 passed, 1 failed\n"},
	}, {
		name: "output in the error is not repeated",
		events: []Event{
			{Kind: TestStart, Test: "t"},
			{Kind: Command, Test: "t", Machine: "vm", Command: "false", Exit: 1, Stdout: "said this\n", Error: "vm: command failed"},
			{Kind: TestEnd, Test: "t", Error: "vm: command failed\n--- stdout ---\nsaid this"},
		},
		want:    []string{"  error:\n    vm: command failed\n    --- stdout ---\n    said this\n"},
		notWant: []string{"stdout:"},
	}, {
		name: "a command that exited non-zero as expected (fail()) is not shown",
		events: []Event{
			{Kind: TestStart, Test: "t"},
			{Kind: Console, Test: "t", Machine: "a", Text: "from a"},
			{Kind: Console, Test: "t", Machine: "b", Text: "from b"},
			{Kind: Command, Test: "t", Machine: "a", Command: "false", Exit: 1, Stderr: "expected\n"},
			{Kind: Command, Test: "t", Machine: "a", Command: "true"},
			{Kind: TestEnd, Test: "t", Error: "wait_for_unit: timed out"},
		},
		want:    []string{"last 1 console line of a:\n    a: from a\n", "last 1 console line of b:\n    b: from b\n"},
		notWant: []string{"expected", "a$ false"},
	}, {
		name: "nested subtests",
		events: []Event{
			{Kind: TestStart, Test: "t"},
			{Kind: SubtestStart, Test: "t", Path: []string{"outer"}},
			{Kind: SubtestStart, Test: "t", Path: []string{"outer", "inner"}},
			{Kind: Log, Test: "t", Path: []string{"outer", "inner"}, Text: "deep\nand more"},
			{Kind: SubtestEnd, Test: "t", Path: []string{"outer", "inner"}, Passed: true, Duration: time.Second},
			{Kind: SubtestEnd, Test: "t", Path: []string{"outer"}, Passed: true, Duration: 2 * time.Second},
			{Kind: TestEnd, Test: "t", Passed: true, Duration: 3 * time.Second},
		},
		want: []string{"RUN  t\n  RUN  outer\n    RUN  inner\n      deep\n      and more\n    PASS inner (1.00s)\n  PASS outer (2.00s)\nPASS t (3.00s)\n1 passed, 0 failed\n"},
	}, {
		name:   "a test that never ends fails",
		events: []Event{{Kind: TestStart, Test: "t"}, {Kind: Log, Test: "t", Text: "stuck"}},
		want:   []string{"RUN  t\n  stuck\nFAIL t (did not finish)\n0 passed, 1 failed\n"},
	}, {
		name:    "events of a test not running are dropped",
		events:  []Event{{Kind: Log, Test: "ghost", Text: "boo"}, {Kind: TestEnd, Test: "late", Passed: true}},
		want:    []string{"RUN  late\nPASS late (0.00s)\n1 passed, 0 failed\n"},
		notWant: []string{"boo", "ghost"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := emitAll(NewTerminal(&buf, tt.opts), tt.events); err != nil {
				t.Fatal(err)
			}
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("got output\n%s\nwant it to contain %q", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("got output\n%s\nwant it without %q", got, w)
				}
			}
		})
	}
}

// TestTerminalParallel checks that tests running at once are shown one
// after the other, the first live and the others held.
func TestTerminalParallel(t *testing.T) {
	log := func(test, text string) Event { return Event{Kind: Log, Test: test, Text: text} }
	tests := []struct {
		name   string
		events []Event
		want   string
	}{{
		name: "second ends first",
		events: []Event{
			{Kind: TestStart, Test: "a"}, {Kind: TestStart, Test: "b"},
			log("b", "b1"), log("a", "a1"),
			{Kind: TestEnd, Test: "b", Passed: true},
			log("a", "a2"),
			{Kind: TestEnd, Test: "a", Passed: true},
		},
		want: "RUN  a\n  a1\n  a2\nPASS a (0.00s)\nRUN  b\n  b1\nPASS b (0.00s)\n2 passed, 0 failed\n",
	}, {
		name: "first ends first",
		events: []Event{
			{Kind: TestStart, Test: "a"}, {Kind: TestStart, Test: "b"}, {Kind: TestStart, Test: "c"},
			log("b", "b1"), log("c", "c1"),
			{Kind: TestEnd, Test: "a", Passed: true},
			log("b", "b2"),
			{Kind: TestEnd, Test: "c"},
			{Kind: TestEnd, Test: "b", Passed: true},
		},
		want: "RUN  a\nPASS a (0.00s)\nRUN  b\n  b1\n  b2\nPASS b (0.00s)\nRUN  c\n  c1\nFAIL c (0.00s)\n2 passed, 1 failed\n",
	}, {
		name: "one never ends",
		events: []Event{
			{Kind: TestStart, Test: "a"}, {Kind: TestStart, Test: "b"},
			log("b", "b1"),
			{Kind: TestEnd, Test: "b", Passed: true},
		},
		want: "RUN  a\nFAIL a (did not finish)\nRUN  b\n  b1\nPASS b (0.00s)\n1 passed, 1 failed\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := emitAll(NewTerminal(&buf, TerminalOptions{}), tt.events); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestTerminalSummaryLine(t *testing.T) {
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		if err := emitAll(NewTerminal(&buf, TerminalOptions{Color: color, Verbose: true}), sampleRun("/out")); err != nil {
			t.Fatal(err)
		}
		ls := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if last := ls[len(ls)-1]; !regexp.MustCompile(`^\d+ passed, \d+ failed$`).MatchString(last) {
			t.Errorf("color %v: got last line %q, want \"N passed, N failed\"", color, last)
		}
	}
}

func TestTerminalClose(t *testing.T) {
	var buf bytes.Buffer
	sink := NewTerminal(&buf, TerminalOptions{})
	if err := emitAll(sink, sampleRun("/out")); err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	if err := sink.Close(); err != nil || buf.Len() != n {
		t.Errorf("second Close: got error %v and %d more bytes, want nil and 0", err, buf.Len()-n)
	}

	sink = NewTerminal(failingWriter{}, TerminalOptions{})
	if err := emitAll(sink, sampleRun("/out")); !errors.Is(err, errWrite) {
		t.Errorf("failing writer: got %v, want %v", err, errWrite)
	}
}

func TestIsTerminal(t *testing.T) {
	regular, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	tests := []struct {
		name string
		f    *os.File
		want bool
	}{
		{"regular file", regular, false},
		{"character device", devNull, true},
	}
	for _, tt := range tests {
		if got := IsTerminal(tt.f); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer the progress clock may write to while the
// test reads it; wrote receives a value after each write, when it has room.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTerminalProgress: with the real timer, the clock redraws the block
// on its own while a machine boots.
func TestTerminalProgress(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	out := syncBuffer{wrote: make(chan struct{}, 1)}
	sink := NewTerminal(&out, TerminalOptions{Progress: true, Width: 40})
	term := sink.(*terminal)
	term.mu.Lock()
	term.progress.now = func() time.Time { return now }
	term.mu.Unlock()
	last := func() string {
		s := screen(out.String())
		return s[strings.LastIndex(s, "\n")+1:]
	}
	sink.Event(Event{Kind: TestStart, Test: "t", Time: t0})
	sink.Event(Event{Kind: BootStart, Test: "t", Machine: "bob", Time: t0})
	term.mu.Lock()
	now = t0.Add(3500 * time.Millisecond)
	term.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for last() != "bob  booting 3.5s" {
		select {
		case <-out.wrote:
		case <-deadline:
			t.Fatalf("the block still says %q, want the clock to redraw it", last())
		}
	}
	sink.Event(Event{Kind: TestEnd, Test: "t", Passed: true, Duration: 5 * time.Second, Time: now})
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	want := "RUN  t\nPASS t (5.00s)\n1 passed, 0 failed"
	if got := screen(out.String()); got != want {
		t.Errorf("the screen shows\n%s\nwant\n%s", got, want)
	}
}

func TestTerminalProgressOff(t *testing.T) {
	var out bytes.Buffer
	sink := NewTerminal(&out, TerminalOptions{})
	sink.Event(Event{Kind: TestStart, Test: "t"})
	sink.Event(Event{Kind: BootStart, Test: "t", Machine: "alice", Time: time.Now()})
	sink.Close()
	if got, want := out.String(), "RUN  t\n  alice: booting\nFAIL t (did not finish)\n0 passed, 1 failed\n"; got != want {
		t.Errorf("without Progress the output is %q, want %q", got, want)
	}
}

// Close ends the progress clock and waits for it, even while a machine
// still boots (a clock left running would hang Close or, under -race, be
// caught writing after it), and the summary line is the last thing written.
func TestTerminalProgressClose(t *testing.T) {
	out := syncBuffer{wrote: make(chan struct{}, 1)}
	sink := NewTerminal(&out, TerminalOptions{Progress: true})
	sink.Event(Event{Kind: TestStart, Test: "t", Time: time.Now()})
	sink.Event(Event{Kind: BootStart, Test: "t", Machine: "vm", Time: time.Now()})
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	before := out.String()
	if !strings.HasSuffix(before, "0 passed, 1 failed\n") {
		t.Errorf("the output ends %q, want the summary line last", before[max(0, len(before)-40):])
	}
}
