package agentproto

import (
	"io"
	"sync"
)

// Queue is an unbounded FIFO of byte chunks with the io.Reader interface. The
// channel's single reading goroutine pushes into it and never blocks, so a
// consumer that stops reading (a command that ignores its stdin) cannot stall
// other streams. The cost is memory: whatever the sender sends and nobody
// reads stays queued until the stream ends.
type Queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	chunks [][]byte
	err    error // set by Close; returned once the queue is drained
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	q := &Queue{}
	q.cond.L = &q.mu
	return q
}

// Push appends b, which the queue now owns. Pushing after Close drops b.
func (q *Queue) Push(b []byte) {
	if len(b) == 0 {
		return
	}
	q.mu.Lock()
	if q.err == nil {
		q.chunks = append(q.chunks, b)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// Close ends the queue: readers get the queued bytes, then err (io.EOF when
// err is nil). Only the first Close counts.
func (q *Queue) Close(err error) {
	if err == nil {
		err = io.EOF
	}
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.cond.Broadcast()
	q.mu.Unlock()
}

// Read blocks until bytes are queued or the queue is closed.
func (q *Queue) Read(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && q.err == nil {
		q.cond.Wait()
	}
	if len(q.chunks) == 0 {
		return 0, q.err
	}
	n := copy(p, q.chunks[0])
	if n == len(q.chunks[0]) {
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
	} else {
		q.chunks[0] = q.chunks[0][n:]
	}
	return n, nil
}
