package report

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// progressEvery is how often the progress line's clock moves.
const progressEvery = 200 * time.Millisecond

// progress is the line a terminal keeps at its bottom while machines boot
// or steps run: "booting alice 1.4s, bob 1.3s | alice$ wait_for_unit("web")
// 3.2s". Other output erases it first and it is drawn again after, so it
// never ends up between report lines; a clock redraws it while anything
// is under way.
type progress struct {
	width   int // the terminal's columns; the line never wraps
	booting []booting
	steps   []booting     // the step each test is in: machine, command, since
	drawn   bool          // the line is on the screen
	ticking bool          // the clock goroutine runs
	stop    chan struct{} // closed by Close: the clock ends
	now     func() time.Time
}

// booting is a machine booting, or (in steps) a test's step under way on
// a machine.
type booting struct {
	test, machine string
	command       string // a step's command or call
	since         time.Time
}

// busy reports whether anything is under way, for the clock to tick.
func (p *progress) busy() bool { return len(p.booting) > 0 || len(p.steps) > 0 }

// step notes the step a test has started; a test runs one at a time.
func (p *progress) step(test, machine, command string, at time.Time) {
	p.stepDone(test)
	p.steps = append(p.steps, booting{test, machine, firstLine(command), at})
}

// stepDone drops the test's step.
func (p *progress) stepDone(test string) {
	p.steps = slices.DeleteFunc(p.steps, func(b booting) bool { return b.test == test })
}

func (p *progress) start(test, machine string, at time.Time) {
	p.booting = append(p.booting, booting{test: test, machine: machine, since: at})
}

// forget drops the boots of test, of one machine or (machine "") all.
func (p *progress) forget(test, machine string) {
	kept := p.booting[:0]
	for _, b := range p.booting {
		if b.test != test || machine != "" && b.machine != machine {
			kept = append(kept, b)
		}
	}
	p.booting = kept
}

// text is the line for now: each booting machine with how long it has
// been booting, then each step under way with how long it has run, named
// with its test when tests run at once, cut to fit.
func (p *progress) text(now time.Time) string {
	tests := make(map[string]bool)
	for _, b := range append(slices.Clone(p.booting), p.steps...) {
		tests[b.test] = true
	}
	name := func(b booting, name string) string {
		if len(tests) > 1 {
			return clean(b.test) + "/" + name
		}
		return name
	}
	var sections []string
	if len(p.booting) > 0 {
		parts := make([]string, len(p.booting))
		for i, b := range p.booting {
			parts[i] = fmt.Sprintf("%s %.1fs", name(b, clean(b.machine)), now.Sub(b.since).Seconds())
		}
		sections = append(sections, "booting "+strings.Join(parts, ", "))
	}
	for _, b := range p.steps {
		sections = append(sections, fmt.Sprintf("%s$ %s %.1fs", name(b, clean(b.machine)), b.command, now.Sub(b.since).Seconds()))
	}
	line := strings.Join(sections, " | ")
	if max := p.width - 1; max > 0 && utf8.RuneCountInString(line) > max {
		line = string([]rune(line)[:max-1]) + "…"
	}
	return line
}

// erase returns what takes the drawn line off the screen.
func (p *progress) erase() string {
	if !p.drawn {
		return ""
	}
	p.drawn = false
	return "\r\x1b[K"
}

// draw returns what puts the current line on the screen, replacing the one
// drawn before.
func (p *progress) draw() string {
	text := p.text(p.now())
	if text == "" {
		return p.erase()
	}
	p.drawn = true
	return "\r\x1b[K" + text
}

// tick redraws the line every progressEvery while machines boot or steps
// run; it ends when none does or the terminal is closed (Close waits for
// it).
func (s *terminal) tick() {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.progress.stop:
			return
		}
		s.mu.Lock()
		if s.closed || !s.progress.busy() {
			s.progress.ticking = false
			s.mu.Unlock()
			return
		}
		s.w.WriteString(s.progress.draw())
		s.mu.Unlock()
	}
}
