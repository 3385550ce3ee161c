package report

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The progress block's clock: it moves every progressEvery while a time
// on the screen shows tenths of a second (under a minute), and every
// progressSlow when they all show whole seconds, so that a lab left up
// for an hour costs one redraw a second, not five.
const (
	progressEvery = 200 * time.Millisecond
	progressSlow  = time.Second
)

// progressLines caps the block's height when the terminal's is unknown;
// a terminal's own leaves room for two lines of the log above the block.
const progressLines = 12

// Machine states on the progress block.
const (
	stateBooting = "booting"
	stateUp      = "up"
	stateFailed  = "failed"  // it did not boot
	stateDown    = "down"    // it went down when nobody asked
	stateStopped = "stopped" // shut down, rebooting, crashed on purpose
)

// progress is the block a terminal keeps at its bottom, a line per
// machine of the running tests with its state and how long it has been
// in it, and the step under way on it:
//
//	client  booting 1.4s
//	server  up 12.3s      $ wait_for_unit("web") 3.2s
//	db      failed 0.2s: boot: timed out after 60s
//
// Other output erases it first and it is drawn again after, so the log
// scrolls above it and never ends up between its lines; a clock redraws it
// while it shows anything, and nothing is written when the block reads as
// it does on the screen.
type progress struct {
	size     func() (cols, rows int) // the terminal's; rows 0: unknown
	tests    []string                // of the lines, in order of their first
	machines []*machineState         // in order of their first event
	steps    []runningStep           // the step each test is in
	drawn    int                     // lines of the block on the screen
	shown    string                  // what they say
	timer    func() bool             // stops the clock's pending tick; nil: none
	now      func() time.Time
}

// machineState is a machine's line: its state since when, and why when it
// failed or went down.
type machineState struct {
	test, machine string
	state         string
	since         time.Time
	why           string
}

// runningStep is a test's step under way on a machine.
type runningStep struct {
	test, machine string
	command       string // a step's command or call, its first line
	since         time.Time
}

// busy reports whether the block shows anything, for the clock to tick.
func (p *progress) busy() bool { return len(p.machines) > 0 || len(p.steps) > 0 }

// step notes the step a test has started; a test runs one at a time.
func (p *progress) step(test, machine, command string, at time.Time) {
	p.stepDone(test)
	p.saw(test)
	p.steps = append(p.steps, runningStep{test, machine, firstLine(command), at})
}

// stepDone drops the test's step.
func (p *progress) stepDone(test string) {
	p.steps = slices.DeleteFunc(p.steps, func(s runningStep) bool { return s.test == test })
}

// set puts a machine of test in state since at, with why it is in it (an
// error: its first line is shown, without the machine's name). A machine's
// line is made at its first state.
func (p *progress) set(test, machine, state string, at time.Time, why string) {
	if ls := lines(why); len(ls) > 0 {
		why = strings.TrimPrefix(ls[0], clean(machine)+": ")
	}
	i := slices.IndexFunc(p.machines, func(m *machineState) bool { return m.test == test && m.machine == machine })
	if i < 0 {
		p.saw(test)
		p.machines = append(p.machines, &machineState{test: test, machine: machine})
		i = len(p.machines) - 1
	}
	*p.machines[i] = machineState{test, machine, state, at, why}
}

// booted notes a boot that ended: up, or failed with err.
func (p *progress) booted(test, machine string, at time.Time, err string) {
	if err != "" {
		p.set(test, machine, stateFailed, at, err)
		return
	}
	p.set(test, machine, stateUp, at, "")
}

// stopped notes a machine's stop, if it has a line: a machine the block
// never showed up does not get one for going away.
func (p *progress) stopped(test, machine string, at time.Time, err string) {
	if !slices.ContainsFunc(p.machines, func(m *machineState) bool { return m.test == test && m.machine == machine }) {
		return
	}
	if err != "" {
		p.set(test, machine, stateDown, at, err)
		return
	}
	p.set(test, machine, stateStopped, at, "")
}

// saw notes a test with something on the block.
func (p *progress) saw(test string) {
	if !slices.Contains(p.tests, test) {
		p.tests = append(p.tests, test)
	}
}

// forget drops the lines and the step of a test that ended.
func (p *progress) forget(test string) {
	p.machines = slices.DeleteFunc(p.machines, func(m *machineState) bool { return m.test == test })
	p.stepDone(test)
	p.tests = slices.DeleteFunc(p.tests, func(t string) bool { return t == test })
}

// block is the block's lines for now, each cut to the terminal's width less a
// column (a line that fills the last column wraps on some terminals), at
// most as many as fit.
func (p *progress) block(now time.Time) []string {
	rows := p.rows(now)
	cols, height := p.size()
	limit := progressLines
	if height > 0 {
		limit = max(1, min(limit, height-2))
	}
	switch {
	case len(rows) <= limit:
	case limit == 1: // a line that only counted would show nothing
		rows = []string{fmt.Sprintf("%s  … and %d more", rows[0], len(rows)-1)}
	default:
		rows = append(rows[:limit-1], fmt.Sprintf("… and %d more", len(rows)-limit+1))
	}
	for i, r := range rows {
		rows[i] = cut(r, cols-1)
	}
	return rows
}

// rows are the block's lines, uncut: each machine's, with the step under
// way on it, then each step on a machine without a line.
func (p *progress) rows(now time.Time) []string {
	tests := slices.DeleteFunc(slices.Clone(p.tests), func(t string) bool {
		return !slices.ContainsFunc(p.machines, func(m *machineState) bool { return m.test == t }) &&
			!slices.ContainsFunc(p.steps, func(s runningStep) bool { return s.test == t })
	})
	name := func(test, machine string) string {
		if len(tests) > 1 {
			return clean(test) + "/" + clean(machine)
		}
		return clean(machine)
	}
	width := 0
	for _, m := range p.machines {
		width = max(width, utf8.RuneCountInString(name(m.test, m.machine)))
	}
	for _, s := range p.steps {
		width = max(width, utf8.RuneCountInString(name(s.test, s.machine)))
	}
	stepText := func(s runningStep) string {
		return fmt.Sprintf("$ %s %s", s.command, elapsed(now.Sub(s.since)))
	}
	var rows []string
	for _, test := range tests {
		steps := slices.DeleteFunc(slices.Clone(p.steps), func(s runningStep) bool { return s.test != test })
		for _, m := range p.machines {
			if m.test != test {
				continue
			}
			status := m.state + " " + elapsed(now.Sub(m.since))
			if m.why != "" {
				status += ": " + m.why
			}
			if i := slices.IndexFunc(steps, func(s runningStep) bool { return s.machine == m.machine }); i >= 0 {
				status = fmt.Sprintf("%-14s %s", status, stepText(steps[i]))
				steps = slices.Delete(steps, i, i+1)
			}
			rows = append(rows, fmt.Sprintf("%-*s  %s", width, name(m.test, m.machine), status))
		}
		for _, s := range steps { // on a machine without a line
			rows = append(rows, fmt.Sprintf("%-*s  %s", width, name(s.test, s.machine), stepText(s)))
		}
	}
	return rows
}

// every is how soon the clock should redraw the block: soon while a time
// on it shows tenths.
func (p *progress) every(now time.Time) time.Duration {
	for _, m := range p.machines {
		if now.Sub(m.since) < time.Minute {
			return progressEvery
		}
	}
	for _, s := range p.steps {
		if now.Sub(s.since) < time.Minute {
			return progressEvery
		}
	}
	return progressSlow
}

// elapsed is a time on the block: "3.2s", "1m04s", "2h05m".
func elapsed(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// cut shortens s to n columns, marking the cut with "…". Every rune of a
// cleaned line, its tabs made spaces, takes one column (clean drops control characters; wide
// East Asian characters would take two, and are cut early).
func cut(s string, n int) string {
	s = strings.ReplaceAll(s, "\t", " ") // clean keeps tabs, which take up to 8 columns
	switch {
	case utf8.RuneCountInString(s) <= n:
		return s
	case n <= 0: // a window one column wide
		return ""
	}
	return string([]rune(s)[:n-1]) + "…"
}

// erase returns what takes the block off the screen, leaving the cursor
// where its first line began: up to that line, then erase to the end of
// the screen.
func (p *progress) erase() string {
	if p.drawn == 0 {
		return ""
	}
	up := ""
	if p.drawn > 1 {
		up = fmt.Sprintf("\x1b[%dA", p.drawn-1)
	}
	p.drawn, p.shown = 0, ""
	return up + "\r\x1b[J"
}

// draw returns what puts the block for now on the screen in place of the
// one there, or nothing when it would read the same. The cursor stays at
// the end of its last line, so that the log goes on from there once the
// block is erased.
func (p *progress) draw() string {
	rows := p.block(p.now())
	text := strings.Join(rows, "\r\n") // \r: the terminal may be in raw mode (a shell in a machine)
	if p.drawn > 0 && text == p.shown {
		return ""
	}
	out := p.erase()
	if len(rows) == 0 {
		return out
	}
	p.drawn, p.shown = len(rows), text
	return out + text
}
