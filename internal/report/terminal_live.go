package report

import (
	"io"
	"strings"
)

// Live is the terminal report's live block without tests around it, for
// a command that keeps machines up (vmlab up): a line per machine with
// its state (booting, up, failed, down, stopped) and how long it has been
// in it, redrawn as the time passes, and vmlab's own lines printed above
// it. With opts.Progress false it only prints the lines.
//
// Its methods are safe for concurrent use (the machines' callbacks call
// Event from their goroutines). Close erases the block and stops its
// clock; Print after Close writes plain lines.
type Live struct{ display }

// NewLive returns a Live writing to w; it does not close w.
func NewLive(w io.Writer, opts TerminalOptions) *Live {
	return &Live{newDisplay(&errWriter{w: w}, opts.newProgress())}
}

// Event moves e.Machine's line: BootStart, Boot and Stop events as the
// terminal report takes them (Test is not shown; a zero Time is now),
// Attach and Detach suspend and resume it. Other kinds are ignored.
func (l *Live) Event(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e.Kind {
	case Attach:
		l.suspend()
	case Detach:
		l.resume()
	}
	if p := l.progress; p != nil && !l.closed {
		if e.Time.IsZero() {
			e.Time = p.now()
		}
		switch e.Kind {
		case BootStart:
			p.set("", e.Machine, stateBooting, e.Time, "")
		case Boot:
			p.booted("", e.Machine, e.Time, e.Error)
		case Stop:
			p.stopped("", e.Machine, e.Time, e.Error)
		}
	}
	l.redraw()
}

// Print writes text's lines above the block, cleaned as the terminal
// report cleans its lines (what a guest printed cannot drive the
// terminal), each ending with a newline.
func (l *Live) Print(text string) {
	ls := lines(text)
	if len(ls) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write(strings.Join(ls, "\n") + "\n")
	l.redraw()
}

// Close erases the block and waits for a tick of its clock under way. It
// returns the first write error; later calls return it too.
func (l *Live) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		for l.suspended > 0 {
			l.resume()
		}
		if l.progress != nil {
			l.w.WriteString(l.progress.erase())
			l.stopClock()
		}
	}
	err := l.w.result()
	l.mu.Unlock()
	l.ticks.Wait()
	return err
}
