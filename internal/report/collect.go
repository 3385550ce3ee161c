package report

import (
	"cmp"
	"slices"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Limits on what the file reports keep of a test, so that a chatty guest
// cannot fill memory or make a report too big to open.
const (
	consoleLimit = 1 << 20 // console text per test
	outputLimit  = 1 << 20 // each of a command's stdout and stderr
)

// collector gathers a run's events per test, for the sinks that write
// their report at Close (JUnit, HTML).
type collector struct {
	tests  []*testRecord          // in start order
	byName map[string]*testRecord // the latest test of each name
	last   time.Time              // of the latest event
}

// testRecord is one test as its events told it.
type testRecord struct {
	step             // the test itself; its Path is empty
	open     []*step // open subtests, outermost first
	lastCmd  *Event
	console  consoleLog
	captures []string
	// machines are the test's machines in the order they first showed
	// (booting, printing, a console log), consoleFiles their logs, and
	// logOrder the machines in the order of their console logs (the
	// runner sends those in declaration order).
	machines     []string
	consoleFiles map[string]string
	logOrder     []string
	// Shard ("2/4") and Host are where a merged report's test ran
	// (Event.Shard and Event.Host); empty in a run's own report.
	Shard, Host string
}

// saw notes a machine of the test.
func (t *testRecord) saw(machine string) {
	if machine != "" && !slices.Contains(t.machines, machine) {
		t.machines = append(t.machines, machine)
	}
}

// step is a test or a subtest.
type step struct {
	Name         string
	Path         []string
	Start        time.Time
	Ended        bool
	Passed       bool
	Skipped      bool   // never started (Event.Skipped); Error says why
	Cached       string // a test not run, as it passed before (Event.Cached): when and where
	Error, Where string
	Source       string // the failing script line, "file:line: text"
	Duration     time.Duration
	FailedCmd    *Event  // the command that failed the step, if one did
	Items        []entry // what happened in it, in order
}

// entry is one thing in a step's timeline: a Command, Log, Network, Boot or ServiceExit event,
// or a subtest.
type entry struct {
	Event *Event
	Sub   *step
}

// add files e under its test. A TestStart starts a new test even if one
// of that name ran before; other events go to the latest test of their
// name, and are dropped if there is none (but for a TestEnd).
func (c *collector) add(e Event) {
	if e.Time.After(c.last) {
		c.last = e.Time
	}
	t := c.byName[e.Test]
	if t == nil || e.Kind == TestStart {
		if e.Kind != TestStart && e.Kind != TestEnd {
			return
		}
		t = &testRecord{step: step{Name: e.Test, Start: e.Time}, console: consoleLog{limit: consoleLimit}}
		if c.byName == nil {
			c.byName = make(map[string]*testRecord)
		}
		c.byName[e.Test] = t
		c.tests = append(c.tests, t)
	}
	t.add(e)
}

func (t *testRecord) add(e Event) {
	if (e.Kind == TestStart || e.Kind == TestEnd) && (e.Shard != "" || e.Host != "") {
		t.Shard, t.Host = e.Shard, e.Host
	}
	switch e.Kind {
	case TestEnd:
		t.open = nil
		t.finish(&t.step, e)
	case SubtestStart:
		t.startSubtest(e)
	case SubtestEnd:
		t.endSubtest(e)
	case Command:
		e.Stdout, e.Stderr = capTail(e.Stdout, outputLimit), capTail(e.Stderr, outputLimit)
		t.lastCmd = &e
		t.current().add(entry{Event: &e})
	case Log, Network, ServiceExit:
		t.current().add(entry{Event: &e})
	case Boot:
		t.saw(e.Machine)
		t.current().add(entry{Event: &e})
	case BootStart:
		t.saw(e.Machine)
	case Console:
		t.saw(e.Machine)
		t.console.add(e.Machine, e.Text, e.Reason)
	case Capture:
		t.captures = append(t.captures, e.File)
	case ConsoleLog:
		t.saw(e.Machine)
		if t.consoleFiles == nil {
			t.consoleFiles = make(map[string]string)
		}
		t.consoleFiles[e.Machine] = e.File
		t.logOrder = append(t.logOrder, e.Machine)
	}
}

// current is the innermost open subtest, or the test.
func (t *testRecord) current() *step {
	if n := len(t.open); n > 0 {
		return t.open[n-1]
	}
	return &t.step
}

func (s *step) add(en entry) { s.Items = append(s.Items, en) }

func (t *testRecord) startSubtest(e Event) {
	depth := len(e.Path)
	if depth == 0 {
		return
	}
	t.open = t.open[:min(len(t.open), depth-1)]
	s := &step{Name: e.Path[depth-1], Path: e.Path, Start: e.Time}
	t.current().add(entry{Sub: s})
	t.open = append(t.open, s)
}

func (t *testRecord) endSubtest(e Event) {
	depth := len(e.Path)
	if depth == 0 || len(t.open) < depth {
		return
	}
	s := t.open[depth-1]
	t.open = t.open[:depth-1]
	t.finish(s, e)
}

func (t *testRecord) finish(s *step, e Event) {
	s.Ended, s.Passed, s.Skipped = true, e.Passed, e.Skipped
	s.Error, s.Where, s.Source, s.Duration = e.Error, e.Where, e.Source, e.Duration
	if e.Skipped {
		s.Error = e.Text
	}
	if e.Cached {
		s.Cached = cmp.Or(e.Text, "cached")
	}
	if !e.Passed && !e.Skipped {
		s.FailedCmd = failingCommand(t.lastCmd, s.Path)
	}
}

// finishAll ends the tests and subtests that never did, as failed: the
// run was interrupted or a test hung. Their duration runs to the last
// event.
func (c *collector) finishAll() {
	for _, t := range c.tests {
		t.open = nil
		t.step.finishUnended(c.last)
	}
}

func (s *step) finishUnended(last time.Time) {
	for _, en := range s.Items {
		if en.Sub != nil {
			en.Sub.finishUnended(last)
		}
	}
	if s.Ended {
		return
	}
	s.Ended = true
	s.Error = "did not finish"
	if !s.Start.IsZero() && last.After(s.Start) {
		s.Duration = last.Sub(s.Start)
	}
}

// steps returns the step and all its subtests, depth first.
func (s *step) steps() []*step {
	all := []*step{s}
	for _, en := range s.Items {
		if en.Sub != nil {
			all = append(all, en.Sub.steps()...)
		}
	}
	return all
}

// consoleLine is one line a machine printed on its console.
type consoleLine struct{ Machine, Text string }

// consoleLog keeps a test's newest console lines, up to limit bytes, and
// the lines that say why a guest failed (Event.Reason), up to maxReasons a
// machine, however old.
type consoleLog struct {
	limit   int
	lines   []consoleLine // lines[start:] are kept
	start   int
	size    int // bytes kept, counted as "machine: text\n"
	dropped int // bytes dropped
	added   int // lines added in all
	reasons []reasonLine
}

// reasonLine is a line that says why a guest failed, with its position
// among all the lines added.
type reasonLine struct {
	consoleLine
	pos int
}

// maxReasons bounds the reason lines kept for a machine: the first are
// the cause, later ones its consequences (machine.Tail keeps as many).
const maxReasons = 8

func (l *consoleLog) add(machine, text string, reason bool) {
	// The boot parameter a line may quote (the kernel command line in
	// Xorg's banner) is ~900 unreadable characters: tails show it short.
	line := consoleLine{clean(machine), agentproto.ElideBootParam(clean(text))}
	if reason && l.countReasons(line.Machine) < maxReasons {
		l.reasons = append(l.reasons, reasonLine{line, l.added})
	}
	l.added++
	l.lines = append(l.lines, line)
	l.size += line.size()
	for l.size > l.limit && l.start < len(l.lines) {
		n := l.lines[l.start].size()
		l.size -= n
		l.dropped += n
		l.lines[l.start] = consoleLine{}
		l.start++
	}
	// Move the kept lines down once half the slice is dropped ones, so
	// that dropping stays cheap per line.
	if l.start > len(l.lines)/2 {
		n := copy(l.lines, l.lines[l.start:])
		clear(l.lines[n:])
		l.lines, l.start = l.lines[:n], 0
	}
}

func (c consoleLine) size() int { return len(c.Machine) + len(": ") + len(c.Text) + len("\n") }

// kept returns the lines kept, oldest first.
func (l *consoleLog) kept() []consoleLine { return l.lines[l.start:] }

func (l *consoleLog) countReasons(machine string) int {
	n := 0
	for _, r := range l.reasons {
		if r.Machine == machine {
			n++
		}
	}
	return n
}

// tail returns the last n lines machine printed, oldest first, after the
// reason lines (a panic's) that came before them and a "..." line, as
// machine errors show their console: the last lines of a panic are its
// stack trace, not what happened.
func (l *consoleLog) tail(machine string, n int) []string {
	var last []string
	kept := l.kept()
	machine = clean(machine) // as add keeps it
	first := l.added         // position of the oldest line in last
	for i := len(kept) - 1; i >= 0 && len(last) < n; i-- {
		if kept[i].Machine == machine {
			last = append(last, kept[i].Text)
			first = l.added - len(kept) + i
		}
	}
	slices.Reverse(last)
	var out []string
	next := -1 // the line after the last reason shown
	for _, r := range l.reasons {
		if r.Machine == machine && r.pos < first {
			out = append(out, r.Text)
			next = r.pos + 1
		}
	}
	if next >= 0 && next < first {
		out = append(out, "...")
	}
	return append(out, last...)
}
