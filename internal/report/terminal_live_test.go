package report

import (
	"strings"
	"testing"
	"time"
)

// newTestLive is a Live with a progress block on a vt, a clock the test
// moves and timers the test fires, as newLiveTerm's.
func newTestLive(t *testing.T, cols int) (*Live, *liveTerm) {
	lt := &liveTerm{t: t, vt: newVT(cols), now: t0}
	l := NewLive(countWriter{lt}, TerminalOptions{Progress: true, Width: cols})
	l.progress.now = func() time.Time { return lt.now }
	l.after = func(d time.Duration, f func()) func() bool {
		ft := &fakeTimer{d: d, f: f, pending: true}
		lt.timers = append(lt.timers, ft)
		return func() bool { was := ft.pending; ft.pending = false; return was }
	}
	return l, lt
}

// at moves the test's clock to sec seconds.
func (lt *liveTerm) at(sec float64) time.Time {
	lt.now = t0.Add(time.Duration(sec * float64(time.Second)))
	return lt.now
}

// TestLive: vmlab up's block, a line per machine through booting, up,
// failed, down and stopped with the time in each, the lines printed above
// it, the clock moving it, and nothing of it left at Close.
func TestLive(t *testing.T) {
	l, lt := newTestLive(t, 80)
	l.Event(Event{Kind: BootStart, Machine: "server", Time: lt.at(0)})
	l.Event(Event{Kind: BootStart, Machine: "client", Time: lt.at(0.1)})
	lt.wantBlock("booting", "server  booting 0.1s", "client  booting 0.0s")
	lt.tick(0.3)
	lt.wantBlock("a tick", "server  booting 0.3s", "client  booting 0.2s")

	l.Event(Event{Kind: Boot, Machine: "server", Time: lt.at(2)})
	l.Event(Event{Kind: Boot, Machine: "client", Time: lt.at(2.5), Error: "client: boot: timed out after 60s\nmore"})
	lt.at(3)
	l.Print("lab web is up: vmlab shell MACHINE\n  server  up  eth1 192.168.1.1/24\x1b[2J")
	lt.wantBlock("the lab printed above",
		"lab web is up: vmlab shell MACHINE",
		"  server  up  eth1 192.168.1.1/24",
		"server  up 1.0s",
		"client  failed 0.5s: boot: timed out after 60s")

	l.Event(Event{Kind: Stop, Machine: "server", Time: lt.at(10), Error: `kernel panic "oops"; qemu exited`})
	lt.wantBlock("a machine went down", "  server  up  eth1 192.168.1.1/24",
		`server  down 0.0s: kernel panic "oops"; qemu exited`,
		"client  failed 7.5s: boot: timed out after 60s")
	l.Event(Event{Kind: BootStart, Machine: "server", Time: lt.at(11)})
	l.Event(Event{Kind: Stop, Machine: "server", Time: lt.at(12)})
	lt.wantBlock("stopped", "server  stopped 0.0s", "client  failed 9.5s: boot: timed out after 60s")

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lt.vt.check(t)
	want := "lab web is up: vmlab shell MACHINE\n  server  up  eth1 192.168.1.1/24"
	if got := lt.vt.String(); got != want {
		t.Errorf("after Close the screen shows\n%s\nwant\n%s", got, want)
	}
	if n := lt.pendingTimers(); n != 0 {
		t.Errorf("got %d clock ticks pending after Close, want 0", n)
	}
	l.Print("vmlab: after")
	if got := lt.vt.String(); !strings.HasSuffix(got, "\nvmlab: after") {
		t.Errorf("a line printed after Close: the screen shows\n%s", got)
	}
}

// TestLivePlain: without a progress block Live prints its lines and
// nothing else: no escape sequence, no timer.
func TestLivePlain(t *testing.T) {
	var out strings.Builder
	l := NewLive(&out, TerminalOptions{})
	l.Event(Event{Kind: BootStart, Machine: "server"})
	l.Print("lab web is up")
	l.Event(Event{Kind: Boot, Machine: "server"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "lab web is up\n" {
		t.Errorf("got %q, want %q", got, "lab web is up\n")
	}
}
