package report

import (
	"fmt"
	"time"
)

// A step that runs long is said so: on a terminal the progress block shows
// it with its time; in a plain log (CI), where nothing else would move for
// the 50 s of a slow wait, a line at longStepAfter and every longStepEvery
// after.
const (
	longStepAfter = 10 * time.Second
	longStepEvery = time.Minute
)

// longStep is a test's step under way, watched in a plain log.
type longStep struct {
	machine, command string
	ran              time.Duration // when the next line is due, since the start
	stop             func() bool   // stops the timer
}

// stepStart notes the step a test began: on the progress block, or watched
// for running long.
func (s *terminal) stepStart(t *termTest, e Event) {
	s.stepEnd(t)
	if s.progress != nil {
		s.progress.step(t.name, e.Machine, e.Command, e.Time)
		return
	}
	step := &longStep{machine: e.Machine, command: e.Command, ran: longStepAfter}
	t.step = step
	step.stop = s.after(longStepAfter, func() { s.stillRunning(t, step) })
}

// stillRunning says the step runs long, if it still runs, and watches on.
func (s *terminal) stillRunning(t *termTest, step *longStep) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || t.step != step {
		return
	}
	s.showOpen(t)
	s.line(t, len(t.open)+1, fmt.Sprintf("%s$ %s: still running after %v", clean(step.machine), firstLine(step.command), step.ran))
	step.ran += longStepEvery
	step.stop = s.after(longStepEvery, func() { s.stillRunning(t, step) })
}

// stepEnd forgets the test's step: it ended, or the test did.
func (s *terminal) stepEnd(t *termTest) {
	if s.progress != nil {
		s.progress.stepDone(t.name)
	}
	if t.step != nil {
		t.step.stop()
		t.step = nil
	}
}
