package report

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// Reporter hands a run's events to its sinks. Its methods are safe for
// concurrent use: tests running in parallel share one Reporter, and each
// sink sees one event at a time, all sinks in the same order.
type Reporter struct {
	mu     sync.Mutex
	sinks  []Sink
	closed bool
	err    error // what Close returned
}

// New returns a Reporter that sends every event to each of sinks, in the
// order given. Close closes them.
func New(sinks ...Sink) *Reporter {
	return &Reporter{sinks: slices.Clone(sinks)}
}

// Emit passes e to every sink. A zero Time is set to now, taken under the
// lock so that times never go backwards in the stream. Path is copied, so
// the caller may reuse its slice and sinks may keep theirs. A long command
// or output is cut to its head and tail first (see outputWhole), so no
// sink keeps or writes more. Events emitted after Close are dropped.
func (r *Reporter) Emit(e Event) {
	e.Path = slices.Clone(e.Path)
	bound(&e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	for _, s := range r.sinks {
		s.Event(e)
	}
}

// Close closes every sink, once, and returns their errors joined. Later
// calls return the same error.
func (r *Reporter) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	r.closed = true
	errs := make([]error, len(r.sinks))
	for i, s := range r.sinks {
		errs[i] = s.Close()
	}
	r.err = errors.Join(errs...)
	return r.err
}
