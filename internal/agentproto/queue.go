package agentproto

import (
	"io"
	"sync"
)

// Queue is a FIFO of byte chunks with the io.Reader interface. The
// channel's single reading goroutine pushes into it and never blocks, so a
// consumer that stops reading (a command that ignores its stdin) cannot stall
// other streams. The queue itself does not bound what it holds: the sender's
// Window does, when the queue acknowledges what is read (NewAckQueue).
type Queue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  [][]byte
	err     error     // set by Close; returned once the queue is drained
	ack     func(int) // nil: no acknowledgements
	unacked int       // bytes read and not yet acknowledged
}

// NewQueue returns an empty queue that acknowledges nothing.
func NewQueue() *Queue { return NewAckQueue(nil) }

// NewAckQueue returns an empty queue that calls ack with the count of bytes
// read, at most every ChunkSize bytes, from the reading goroutine and
// outside the queue's lock; ack sends the stream's Ack frame.
func NewAckQueue(ack func(n int)) *Queue {
	q := &Queue{ack: ack}
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
	n, ack, err := q.read(p)
	if ack > 0 {
		q.ack(ack)
	}
	return n, err
}

// read takes bytes from the queue and says how many to acknowledge.
func (q *Queue) read(p []byte) (n, ack int, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && q.err == nil {
		q.cond.Wait()
	}
	if len(q.chunks) == 0 {
		return 0, 0, q.err
	}
	n = copy(p, q.chunks[0])
	if n == len(q.chunks[0]) {
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
	} else {
		q.chunks[0] = q.chunks[0][n:]
	}
	if q.ack != nil {
		q.unacked += n
		if q.unacked >= ackEvery || len(q.chunks) == 0 {
			ack, q.unacked = q.unacked, 0
		}
	}
	return n, ack, nil
}
