package vnet

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Fault is what a link does to the frames crossing it. The zero Fault
// delivers every frame at once.
type Fault struct {
	Delay  time.Duration // added to every frame
	Jitter time.Duration // ± uniformly around Delay; frames may overtake each other
	// Loss, Duplicate and Reorder are probabilities in [0, 1]. A reordered
	// frame skips the delay, so it overtakes frames delayed before it.
	Loss, Duplicate, Reorder float64
	// Rate limits the link to this many bits per second; 0 means no limit.
	// Frames wait their turn; more than a queue's worth are dropped.
	Rate int64
}

// Validate reports a fault that cannot be applied.
func (f Fault) Validate() error {
	switch {
	case f.Delay < 0 || f.Jitter < 0:
		return fmt.Errorf("fault: negative delay or jitter (%v, %v)", f.Delay, f.Jitter)
	case f.Jitter > f.Delay && f.Delay > 0:
		return fmt.Errorf("fault: jitter %v exceeds delay %v", f.Jitter, f.Delay)
	case !prob(f.Loss) || !prob(f.Duplicate) || !prob(f.Reorder):
		return fmt.Errorf("fault: loss, duplicate and reorder are probabilities in [0, 1]")
	case f.Rate < 0:
		return fmt.Errorf("fault: negative rate %d", f.Rate)
	}
	return nil
}

func prob(p float64) bool { return p >= 0 && p <= 1 }

func (f Fault) zero() bool { return f == Fault{} }

// apply hands frame to out, as the fault says.
func (f Fault) apply(out *outQueue, frame []byte, at time.Time) {
	if f.zero() {
		out.push(frame, at, 0)
		return
	}
	if f.Loss > 0 && rand.Float64() < f.Loss {
		out.port.drop("loss (fault)")
		return
	}
	copies := 1
	if f.Duplicate > 0 && rand.Float64() < f.Duplicate {
		copies = 2
	}
	for range copies {
		due := at
		if f.Reorder == 0 || rand.Float64() >= f.Reorder {
			d := f.Delay
			if f.Jitter > 0 {
				d += time.Duration(rand.Int64N(int64(2*f.Jitter)+1)) - f.Jitter
			}
			due = at.Add(d)
		}
		out.push(frame, due, f.Rate)
	}
}

// outQueue holds a port's outgoing frames in order of the time they are due,
// and writes them to the machine's socket when they are.
type outQueue struct {
	port *Port

	mu       sync.Mutex
	frames   frameHeap
	seq      uint64    // keeps equal due times in arrival order
	rateNext time.Time // when the rate-limited link is free again
	writing  bool      // run is writing a frame it took off the queue
	wake     chan struct{}
	done     chan struct{}
	closed   bool
}

func newOutQueue(p *Port) *outQueue {
	return &outQueue{port: p, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *outQueue) push(frame []byte, due time.Time, rate int64) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if len(q.frames) >= queueLen {
		q.mu.Unlock()
		q.port.drop("queue full")
		return
	}
	if rate > 0 {
		if due.Before(q.rateNext) {
			due = q.rateNext
		}
		q.rateNext = due.Add(time.Duration(int64(len(frame)) * 8 * int64(time.Second) / rate))
	}
	// Fast path: a frame due now, behind nothing, goes out from the sender's
	// goroutine, saving a hand-off to run. The write does not block: if the
	// machine's socket is full, the frame queues like any other.
	if len(q.frames) == 0 && !q.writing && !due.After(time.Now()) && q.tryWrite(frame) {
		q.mu.Unlock()
		return
	}
	q.seq++
	heap.Push(&q.frames, queued{frame: frame, due: due, seq: q.seq})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *outQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
	q.mu.Unlock()
}

// run writes frames as they fall due, until close.
func (q *outQueue) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		var next queued
		wait := time.Duration(-1)
		if len(q.frames) > 0 {
			if d := time.Until(q.frames[0].due); d > 0 {
				wait = d
			} else {
				next = heap.Pop(&q.frames).(queued)
				q.writing = true
			}
		}
		q.mu.Unlock()
		if next.frame != nil {
			if err := writeFrame(q.port.fd, next.frame, 0); err != nil {
				q.port.drop("write error")
			}
			q.mu.Lock()
			q.writing = false
			q.mu.Unlock()
			continue
		}
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-q.wake:
		case <-fire:
		case <-q.done:
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

type queued struct {
	frame []byte
	due   time.Time
	seq   uint64
}

type frameHeap []queued

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tryWrite writes frame if the socket takes it at once; it never blocks.
func (q *outQueue) tryWrite(frame []byte) bool {
	err := writeFrame(q.port.fd, frame, unix.MSG_DONTWAIT)
	if err == unix.EAGAIN {
		return false
	}
	if err != nil {
		q.port.drop("write error")
	}
	return true
}

// writeFrame sends one datagram.
func writeFrame(fd int, frame []byte, flags int) error {
	for {
		err := unix.Send(fd, frame, flags)
		if err != unix.EINTR {
			return err
		}
	}
}
