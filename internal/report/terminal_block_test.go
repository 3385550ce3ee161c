package report

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// liveTerm is a terminal report with a progress block on a vt, a clock
// the test moves and a timer the test fires: nothing runs on its own.
type liveTerm struct {
	t      *testing.T
	vt     *vt
	sink   Sink
	now    time.Time
	timers []*fakeTimer
	writes int // calls to the vt's Write
}

type fakeTimer struct {
	d       time.Duration
	f       func()
	pending bool
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newLiveTerm(t *testing.T, opts TerminalOptions) *liveTerm {
	cols, _ := opts.size()
	lt := &liveTerm{t: t, vt: newVT(cols), now: t0}
	opts.Progress = true
	lt.sink = NewTerminal(countWriter{lt}, opts)
	term := lt.sink.(*terminal)
	term.progress.now = func() time.Time { return lt.now }
	term.after = func(d time.Duration, f func()) func() bool {
		ft := &fakeTimer{d: d, f: f, pending: true}
		lt.timers = append(lt.timers, ft)
		return func() bool {
			was := ft.pending
			ft.pending = false
			return was
		}
	}
	return lt
}

type countWriter struct{ lt *liveTerm }

func (w countWriter) Write(p []byte) (int, error) {
	w.lt.writes++
	return w.lt.vt.Write(p)
}

// emit sends e at sec seconds, in test "t" unless it names one.
func (lt *liveTerm) emit(sec float64, e Event) {
	lt.now = t0.Add(time.Duration(sec * float64(time.Second)))
	e.Time = lt.now
	if e.Test == "" {
		e.Test = "t"
	}
	lt.sink.Event(e)
}

// tick moves the clock to sec and fires the pending timer, as it would
// go off; it returns the timer's duration.
func (lt *liveTerm) tick(sec float64) time.Duration {
	lt.t.Helper()
	lt.now = t0.Add(time.Duration(sec * float64(time.Second)))
	var pending []*fakeTimer
	for _, ft := range lt.timers {
		if ft.pending {
			pending = append(pending, ft)
		}
	}
	if len(pending) != 1 {
		lt.t.Fatalf("got %d pending timers, want 1", len(pending))
	}
	pending[0].pending = false
	pending[0].f()
	return pending[0].d
}

// block is the screen's last n lines, each with its trailing spaces cut.
func (lt *liveTerm) block(n int) []string {
	lt.t.Helper()
	lt.vt.check(lt.t)
	ls := lt.vt.bottom(n)
	for i := range ls {
		ls[i] = strings.TrimRight(ls[i], " ")
	}
	return ls
}

func (lt *liveTerm) wantBlock(what string, want ...string) {
	lt.t.Helper()
	if got := lt.block(len(want)); !slices.Equal(got, want) {
		lt.t.Errorf("%s: the screen ends\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestProgressBlock: a line per machine with its state and time in it,
// the step under way beside its machine, a failure's reason, the log above
// the block, and a screen without the block once the run is over.
func TestProgressBlock(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Width: 100})
	lt.emit(0, Event{Kind: TestStart})
	lt.emit(0, Event{Kind: BootStart, Machine: "server"})
	lt.emit(0.5, Event{Kind: BootStart, Machine: "client"})
	lt.wantBlock("two boots",
		"RUN  t",
		"server  booting 0.5s",
		"client  booting 0.0s")

	lt.emit(1, Event{Kind: Log, Text: "a line of the log"})
	lt.wantBlock("a log line",
		"RUN  t",
		"  a line of the log",
		"server  booting 1.0s",
		"client  booting 0.5s")

	lt.emit(2, Event{Kind: Boot, Machine: "server", Duration: 2 * time.Second})
	lt.emit(2.5, Event{Kind: CommandStart, Machine: "server", Command: "wait_for_unit(\"web\")\nmore"})
	lt.emit(3, Event{Kind: Boot, Machine: "client", Error: "client: boot: timed out after 60s\n--- last console lines ---\nx"})
	lt.wantBlock("up, failed, a step",
		"  a line of the log",
		`server  up 1.0s        $ wait_for_unit("web") ... 0.5s`,
		"client  failed 0.0s: boot: timed out after 60s")

	lt.emit(4, Event{Kind: Command, Machine: "server", Command: "wait_for_unit(\"web\")", Outcome: Done})
	lt.emit(4, Event{Kind: Stop, Machine: "server"})
	lt.emit(4, Event{Kind: BootStart, Machine: "server"})
	lt.emit(5, Event{Kind: Stop, Machine: "client", Error: "kernel panic \"oops\"; qemu exited"})
	lt.emit(5, Event{Kind: Stop, Machine: "never-booted"})
	lt.wantBlock("a reboot and a machine gone down",
		"  a line of the log",
		"server  booting 1.0s",
		"client  down 0.0s: kernel panic \"oops\"; qemu exited")
	lt.emit(6, Event{Kind: Stop, Machine: "server"})
	lt.wantBlock("a shutdown",
		"server  stopped 0.0s",
		"client  down 1.0s: kernel panic \"oops\"; qemu exited")

	lt.emit(7, Event{Kind: TestEnd, Passed: true, Duration: 7 * time.Second})
	if err := lt.sink.Close(); err != nil {
		t.Fatal(err)
	}
	lt.vt.check(t)
	want := "RUN  t\n  a line of the log\nPASS t (7.00s)\n1 passed, 0 failed"
	if got := lt.vt.String(); got != want {
		t.Errorf("at the end the screen shows\n%s\nwant\n%s", got, want)
	}
}

// TestProgressClock: the clock redraws the block as time passes, five
// times a second while a time shows tenths and once a second after a
// minute; a tick that changes nothing writes nothing; it stops when the
// block is empty and at Close.
func TestProgressClock(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Width: 80})
	lt.emit(0, Event{Kind: TestStart})
	if len(lt.timers) != 0 {
		t.Errorf("a timer was set with nothing on the block")
	}
	lt.emit(0, Event{Kind: BootStart, Machine: "vm"})
	if d := lt.tick(0.2); d != progressEvery {
		t.Errorf("the clock ticked after %v, want %v", d, progressEvery)
	}
	lt.wantBlock("a tick", "vm  booting 0.2s")
	lt.emit(1, Event{Kind: Boot, Machine: "vm"})
	lt.tick(1.01)
	before := lt.writes
	lt.tick(1.04) // "up 0.0s" then and now
	lt.wantBlock("two ticks", "vm  up 0.0s")
	if lt.writes != before {
		t.Errorf("a tick that changed nothing wrote %d times", lt.writes-before)
	}
	lt.tick(61)
	lt.wantBlock("a minute up", "vm  up 1m00s")
	if d := lt.tick(62); d != progressSlow {
		t.Errorf("after a minute the clock ticked after %v, want %v", d, progressSlow)
	}
	lt.wantBlock("a minute and a second", "vm  up 1m01s")
	lt.tick(3725)
	lt.wantBlock("an hour", "vm  up 1h02m")

	lt.emit(3800, Event{Kind: TestEnd, Passed: true})
	lt.tick(3800.2) // the one pending: it finds the block empty
	for _, ft := range lt.timers {
		if ft.pending {
			t.Errorf("a timer is pending with the block empty")
		}
	}
	lt.emit(3801, Event{Kind: TestStart, Test: "u"})
	lt.emit(3801, Event{Kind: BootStart, Test: "u", Machine: "vm"})
	if err := lt.sink.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ft := range lt.timers {
		if ft.pending {
			t.Errorf("a timer is still pending after Close")
		}
	}
	if got := lt.vt.String(); strings.Contains(got, "booting") || !strings.HasSuffix(got, "\n1 passed, 1 failed") {
		t.Errorf("after Close the screen shows\n%s\nwant no block and the summary last", got)
	}
}

// TestProgressWidth: the block's lines are cut to the terminal's width
// less a column, and follow a window that is resized; the block takes no
// more rows than the terminal has but two.
func TestProgressWidth(t *testing.T) {
	cols, rows := 30, 24
	lt := newLiveTerm(t, TerminalOptions{Size: func() (int, int) { return cols, rows }})
	lt.emit(0, Event{Kind: TestStart})
	lt.emit(0, Event{Kind: BootStart, Machine: "a-machine-with-a-long-name"})
	lt.emit(0, Event{Kind: BootStart, Machine: "b"})
	lt.emit(1, Event{Kind: Boot, Machine: "b", Error: "b: boot: a long explanation of\twhy it did not boot"})
	lt.wantBlock("30 columns",
		"a-machine-with-a-long-name  …",
		"b                           …")
	cols, lt.vt.cols = 12, 12
	lt.tick(1.2)
	lt.wantBlock("12 columns", "a-machine-…", "b         …")
	for _, l := range lt.block(2) {
		if n := len([]rune(l)); n > 11 {
			t.Errorf("line %q has %d columns, want at most 11", l, n)
		}
	}

	cols, rows, lt.vt.cols = 80, 5, 80
	for _, m := range []string{"c", "d", "e"} {
		lt.emit(2, Event{Kind: BootStart, Machine: m})
	}
	lt.wantBlock("5 rows",
		"RUN  t",
		"a-machine-with-a-long-name  booting 2.0s",
		"b                           failed 1.0s: boot: a long explanation of why it di…",
		"… and 3 more")
}

// TestProgressParallel: with tests running at once, each machine is named
// with its test; a step on a machine without a line gets one.
func TestProgressParallel(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Width: 80})
	lt.emit(0, Event{Kind: TestStart, Test: "a"})
	lt.emit(0, Event{Kind: CommandStart, Test: "a", Machine: "vm", Command: `wait_for_unit("web")`})
	lt.wantBlock("a step alone", `vm  $ wait_for_unit("web") 0.0s`)
	lt.emit(1, Event{Kind: TestStart, Test: "b"})
	lt.emit(1, Event{Kind: BootStart, Test: "b", Machine: "db"})
	lt.wantBlock("two tests",
		"RUN  a",
		`a/vm  $ wait_for_unit("web") 1.0s`,
		"b/db  booting 0.0s")
	lt.emit(2, Event{Kind: TestEnd, Test: "a", Passed: true})
	lt.wantBlock("one test again", "db  booting 1.0s")
	lt.sink.Close()
}

// BenchmarkProgressRedraw measures a tick's redraw of a block of 12
// machines, each of its own test and with a step under way, while their
// times show tenths: what the clock costs five times a second.
func BenchmarkProgressRedraw(b *testing.B) {
	now := t0
	p := &progress{size: TerminalOptions{Width: 120}.size, now: func() time.Time { return now }}
	for i := range 12 {
		test, m := fmt.Sprintf("web.test_%d", i), fmt.Sprintf("machine%d", i)
		p.set(test, m, stateUp, t0, "")
		p.step(test, m, `wait_for_unit("web")`, t0)
	}
	bytes, i := 0, 0
	for b.Loop() {
		i++
		now = t0.Add(time.Duration(i%500) * 100 * time.Millisecond)
		bytes += len(p.draw())
	}
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/redraw")
}

func TestCut(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"äöüß", 3, "äö…"},
		{"a\tb", 5, "a b"},
		{"abc", 0, ""}, // a window one column wide leaves none for the block
	}
	for _, tt := range tests {
		if got := cut(tt.s, tt.n); got != tt.want {
			t.Errorf("cut(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
