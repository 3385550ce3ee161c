package report

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serialSink fails the test if two events arrive at once.
type serialSink struct {
	t        *testing.T
	inFlight atomic.Int32
	n        int
}

func (s *serialSink) Event(Event) {
	if s.inFlight.Add(1) != 1 {
		s.t.Error("got concurrent calls to Event, want one at a time")
	}
	s.n++
	s.inFlight.Add(-1)
}

func (s *serialSink) Close() error { return nil }

func TestReporterSerializes(t *testing.T) {
	const goroutines, each = 8, 200
	sinks := []*serialSink{{t: t}, {t: t}}
	r := New(sinks[0], sinks[1])
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				r.Emit(Event{Kind: Log, Test: "t", Text: "x"})
			}
		})
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for i, s := range sinks {
		if s.n != goroutines*each {
			t.Errorf("sink %d: got %d events, want %d", i, s.n, goroutines*each)
		}
	}
}

func TestReporterTime(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		keep bool
	}{
		{"zero is filled", time.Time{}, false},
		{"set is kept", start, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			r := New(rec)
			before := time.Now()
			r.Emit(Event{Time: tt.in, Kind: Log, Test: "t"})
			after := time.Now()
			got := rec.events[0].Time
			switch {
			case tt.keep && !got.Equal(tt.in):
				t.Errorf("got time %v, want %v", got, tt.in)
			case !tt.keep && (got.Before(before) || got.After(after)):
				t.Errorf("got time %v, want between %v and %v", got, before, after)
			}
		})
	}
}

func TestReporterCopiesPath(t *testing.T) {
	rec := &recorder{}
	r := New(rec)
	path := []string{"outer", "inner"}
	r.Emit(Event{Kind: SubtestStart, Test: "t", Path: path})
	path[1] = "changed"
	if got := rec.events[0].Path[1]; got != "inner" {
		t.Errorf("got path element %q after the caller changed its slice, want %q", got, "inner")
	}
}

func TestReporterClose(t *testing.T) {
	errA, errB := errors.New("a failed"), errors.New("b failed")
	a, b, c := &recorder{err: errA}, &recorder{}, &recorder{err: errB}
	r := New(a, b, c)
	r.Emit(Event{Kind: TestStart, Test: "t"})
	err := r.Close()
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("got error %v, want both %v and %v", err, errA, errB)
	}
	if again := r.Close(); again != err {
		t.Errorf("second Close: got %v, want the first's %v", again, err)
	}
	r.Emit(Event{Kind: TestEnd, Test: "t"})
	for i, s := range []*recorder{a, b, c} {
		if s.closes != 1 {
			t.Errorf("sink %d: got %d closes, want 1", i, s.closes)
		}
		if len(s.events) != 1 {
			t.Errorf("sink %d: got %d events, want 1 (none after Close)", i, len(s.events))
		}
	}
}
