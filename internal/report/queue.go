package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ConsoleQueueSize is the number of console lines a Queue holds for a
// slow sink before it drops them: at the ~80 bytes of a kernel line, 4096
// lines are ~320 KiB, a whole boot's console several times over.
const ConsoleQueueSize = 4096

// KeptReserve is how many events a Queue holds beyond its size for
// EmitKept, so that a service's exit is not dropped to make room for
// console lines. The agent tells a crash-looping service's exits at the
// 1st, 2nd, 3rd, 4th, 8th, 16th... (and its last): 64 outlast any stall.
const KeptReserve = 64

// Queue hands events to emit from its own goroutine, so that the caller
// never waits for the sinks: a machine's console reader calls Emit, and a
// paused terminal or a slow reader of -json output must not stall the
// guest's serial console. When size events wait already, Emit drops the
// event and counts it; the next event the goroutine writes is preceded by
// a Log event per machine saying how many lines were dropped there. (The
// machine's console.log is written by the machine itself and keeps every
// line.) EmitKept is for the few events that must not be dropped with
// console lines (service exits): they have KeptReserve places more.
//
// Emit, EmitKept and Close are safe for concurrent use. Close stops the
// goroutine after it has written what waits, and waits for it.
type Queue struct {
	emit func(Event)
	size int        // how many events Emit queues; cap(ch) is size + KeptReserve
	ch   chan Event // sent to only under mu, so a send after a length check never blocks
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	dropped map[dropKey]int // events dropped since the last notice
}

// dropKey is where dropped events belonged, and their kind: a notice goes
// to each.
type dropKey struct {
	test, machine string
	kind          Kind
}

// NewQueue starts a queue of size events in front of emit.
func NewQueue(emit func(Event), size int) *Queue {
	size = max(size, 1)
	q := &Queue{emit: emit, size: size, ch: make(chan Event, size+KeptReserve), done: make(chan struct{}),
		dropped: make(map[dropKey]int)}
	go q.run()
	return q
}

// Emit queues e, or drops it when size events wait. It never blocks
// (beyond a map update under a lock no writer holds for longer). Events
// emitted after Close are dropped.
func (q *Queue) Emit(e Event) { q.put(e, q.size) }

// EmitKept queues e as Emit does, in order with the events emitted
// before it, but also when size events wait: it is dropped (and counted
// as its kind) only when the KeptReserve places beyond are taken too.
func (q *Queue) EmitKept(e Event) { q.put(e, cap(q.ch)) }

// put queues e unless limit events wait already.
func (q *Queue) put(e Event, limit int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if len(q.ch) < limit {
		q.ch <- e // only put sends, under mu: there is room
		return
	}
	q.dropped[dropKey{e.Test, e.Machine, e.Kind}]++
}

// Close writes what is queued and the last drop notices, and returns when
// the goroutine has ended. It is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	<-q.done
}

func (q *Queue) run() {
	defer close(q.done)
	for e := range q.ch {
		q.notices()
		q.emit(e)
	}
	q.notices()
}

// notices emits a Log event for each machine that had lines dropped since
// the last notice.
func (q *Queue) notices() {
	q.mu.Lock()
	if len(q.dropped) == 0 {
		q.mu.Unlock()
		return
	}
	dropped := q.dropped
	q.dropped = make(map[dropKey]int)
	q.mu.Unlock()
	keys := make([]dropKey, 0, len(dropped))
	for k := range dropped {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dropKey) int {
		return cmp.Or(strings.Compare(a.test, b.test), strings.Compare(a.machine, b.machine), strings.Compare(string(a.kind), string(b.kind)))
	})
	for _, k := range keys {
		what := "console lines"
		if k.kind != Console && k.kind != "" { // vmlab up's lines have no kind
			what = string(k.kind) + " events"
		}
		q.emit(Event{Kind: Log, Test: k.test, Machine: k.machine,
			Text: fmt.Sprintf("%d %s dropped: they came faster than the output took them (the machine's console.log keeps them all)", dropped[k], what)})
	}
}
