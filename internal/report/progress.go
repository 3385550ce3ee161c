package report

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// progressEvery is how often the progress line's clock moves.
const progressEvery = 200 * time.Millisecond

// progress is the line a terminal keeps at its bottom while machines boot:
// "booting alice 1.4s, bob 1.3s". Other output erases it first and it is
// drawn again after, so it never ends up between report lines; a clock
// redraws it while any machine boots.
type progress struct {
	width   int // the terminal's columns; the line never wraps
	booting []booting
	drawn   bool          // the line is on the screen
	ticking bool          // the clock goroutine runs
	stop    chan struct{} // closed by Close: the clock ends
	now     func() time.Time
}

type booting struct {
	test, machine string
	since         time.Time
}

func (p *progress) start(test, machine string, at time.Time) {
	p.booting = append(p.booting, booting{test, machine, at})
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
// been booting, named with its test when tests boot at once, cut to fit.
func (p *progress) text(now time.Time) string {
	if len(p.booting) == 0 {
		return ""
	}
	tests := make(map[string]bool)
	for _, b := range p.booting {
		tests[b.test] = true
	}
	parts := make([]string, len(p.booting))
	for i, b := range p.booting {
		name := clean(b.machine)
		if len(tests) > 1 {
			name = clean(b.test) + "/" + name
		}
		parts[i] = fmt.Sprintf("%s %.1fs", name, now.Sub(b.since).Seconds())
	}
	line := "booting " + strings.Join(parts, ", ")
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

// tick redraws the line every progressEvery while machines boot; it ends
// when none does or the terminal is closed (Close waits for it).
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
		if s.closed || len(s.progress.booting) == 0 {
			s.progress.ticking = false
			s.mu.Unlock()
			return
		}
		s.w.WriteString(s.progress.draw())
		s.mu.Unlock()
	}
}
