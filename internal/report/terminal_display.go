package report

import (
	"bytes"
	"fmt"
	"sync"
	"time"
)

// display is a terminal's output with the progress block at its bottom:
// text written erases the block first, and a clock redraws it. While a
// terminal is attached to a guest (suspended), it writes nothing at all:
// the block is erased, its clock stopped, and text is held until the
// terminal comes back. The terminal report and Live share it.
type display struct {
	// mu guards everything below: the progress clock draws from its own
	// goroutine.
	mu       sync.Mutex
	w        *errWriter
	progress *progress                                      // nil: no block
	after    func(time.Duration, func()) (stop func() bool) // time.AfterFunc; tests replace it
	ticks    sync.WaitGroup                                 // the progress clock's pending or running tick
	closed   bool

	// suspended counts the terminals attached to a guest (Attach events
	// not yet followed by their Detach); held is what was written
	// meanwhile, up to heldLimit, and dropped how many lines were not.
	suspended int
	held      bytes.Buffer
	dropped   int
}

// heldLimit bounds what a display holds while suspended: an hour in a
// shell with -v's console lines coming at ~80 bytes a line is a few MiB,
// more than anyone reads back; the machines' console.log keep them all.
const heldLimit = 1 << 20

func newDisplay(w *errWriter, p *progress) display {
	return display{w: w, progress: p, after: func(d time.Duration, f func()) func() bool {
		return time.AfterFunc(d, f).Stop
	}}
}

// write writes to the terminal, erasing the progress block first (redraw
// puts it back), or holds text while suspended. d.mu is held.
func (d *display) write(text string) {
	if d.suspended > 0 {
		if d.held.Len()+len(text) > heldLimit {
			d.dropped += bytes.Count([]byte(text), []byte("\n"))
			return
		}
		d.held.WriteString(text)
		return
	}
	if d.progress != nil {
		text = d.progress.erase() + text
	}
	d.w.WriteString(text)
}

// redraw puts the block for now on the screen and keeps its clock going,
// unless suspended. d.mu is held.
func (d *display) redraw() {
	if d.progress == nil || d.suspended > 0 || d.closed {
		return
	}
	d.w.WriteString(d.progress.draw())
	d.clock()
}

// suspend hands the terminal to someone else (a shell in a guest): the
// block is erased and its clock stopped, and nothing is written until
// resume. Calls nest. d.mu is held.
func (d *display) suspend() {
	d.suspended++
	if d.suspended > 1 || d.progress == nil {
		return
	}
	d.w.WriteString(d.progress.erase())
	d.stopClock()
}

// resume takes the terminal back after suspend: what was held is written
// (redraw draws the block again). A resume without a suspend does
// nothing. d.mu is held.
func (d *display) resume() {
	if d.suspended == 0 {
		return
	}
	d.suspended--
	if d.suspended > 0 {
		return
	}
	d.w.WriteString(d.held.String())
	d.held = bytes.Buffer{}
	if d.dropped > 0 {
		d.w.WriteString(fmt.Sprintf("[%s left out while a terminal was attached: the reports and console logs have them]\n", plural(d.dropped, "line")))
		d.dropped = 0
	}
}

// clock keeps a tick of the block's clock pending while the block shows
// anything. d.mu is held.
func (d *display) clock() {
	p := d.progress
	if p.timer != nil || d.closed || d.suspended > 0 || !p.busy() {
		return
	}
	d.ticks.Add(1)
	p.timer = d.after(p.every(p.now()), func() {
		defer d.ticks.Done()
		d.mu.Lock()
		defer d.mu.Unlock()
		p.timer = nil
		d.redraw()
	})
}

// stopClock stops a pending tick; close then waits for one under way.
// d.mu is held.
func (d *display) stopClock() {
	p := d.progress
	if p.timer != nil && p.timer() {
		d.ticks.Done() // it will not run
	}
	p.timer = nil
}
