package report

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// stuckWriter blocks every Write until release is closed, like a paused
// terminal; blocked is closed at the first Write.
type stuckWriter struct {
	blocked, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	buf              bytes.Buffer
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{blocked: make(chan struct{}), release: make(chan struct{})}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.blocked) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stuckWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait fails the test unless ch is closed before the deadline.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10 s", what)
	}
}

// TestQueueNeverBlocks: with the terminal and a -json reader stuck, console
// lines keep being taken at once; the ones the queue cannot hold are
// dropped and counted, and the count is reported when the sinks move again.
func TestQueueNeverBlocks(t *testing.T) {
	const size, lines = 8, 1000
	term, jsonOut := newStuckWriter(), newStuckWriter()
	rep := New(NewTerminal(term, TerminalOptions{Verbose: true}), NewJSONLines(jsonOut))
	q := NewQueue(rep.Emit, size)
	q.Emit(Event{Kind: TestStart, Test: "t"})
	wait(t, term.blocked, "the terminal's first write")

	// The console reader: every Emit returns although no sink moves.
	read := make(chan struct{})
	go func() {
		defer close(read)
		for i := range lines {
			q.Emit(Event{Kind: Console, Test: "t", Machine: "vm", Text: fmt.Sprintf("line %d", i)})
		}
	}()
	wait(t, read, "the console reader")

	close(term.release)
	close(jsonOut.release)
	closed := make(chan struct{})
	go func() {
		q.Close()
		q.Close() // idempotent
		close(closed)
	}()
	wait(t, closed, "Close")
	q.Emit(Event{Kind: Console, Test: "t", Machine: "vm", Text: "after close"})
	rep.Emit(Event{Kind: TestEnd, Test: "t", Passed: true})
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}

	// The writer held TestStart when the lines came: the queue took the
	// first size lines and dropped the rest.
	notice := fmt.Sprintf("%d console lines dropped:", lines-size)
	for name, out := range map[string]string{"terminal": term.String(), "json": jsonOut.String()} {
		if !strings.Contains(out, notice) {
			t.Errorf("%s output lacks %q:\n%s", name, notice, out)
		}
		for _, want := range []string{"line 0", fmt.Sprintf("line %d", size-1)} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks the queued %q", name, want)
			}
		}
		for _, unwanted := range []string{fmt.Sprintf("line %d\"", size), fmt.Sprintf("line %d\n", size), "after close"} {
			if strings.Contains(out, unwanted) {
				t.Errorf("%s output has %q, which the queue had no room for", name, unwanted)
			}
		}
	}
}

// TestQueueEmitKept: with the queue full of console lines, kept events
// are still queued, after the lines queued before them, and dropped (and
// counted as what they are) only past KeptReserve more.
func TestQueueEmitKept(t *testing.T) {
	var got []Event // written by the queue's goroutine alone until Close
	blocked, release := make(chan struct{}), make(chan struct{})
	q := NewQueue(func(e Event) {
		if e.Kind == TestStart {
			close(blocked)
			<-release
		}
		got = append(got, e)
	}, 2)
	q.Emit(Event{Kind: TestStart, Test: "t"})
	wait(t, blocked, "the writer's first event")
	for i := range 4 { // lines 0 and 1 fill the queue; 2 and 3 are dropped
		q.Emit(Event{Kind: Console, Test: "t", Machine: "vm", Text: fmt.Sprintf("line %d", i)})
	}
	for i := range KeptReserve + 1 { // the last has no place left
		q.EmitKept(Event{Kind: ServiceExit, Test: "t", Machine: "vm", Text: fmt.Sprintf("exit %d", i)})
	}
	close(release)
	q.Close()

	var texts []string
	for _, e := range got[1:] {
		texts = append(texts, e.Text)
	}
	// The drop notices come before the next event written.
	want := []string{
		"2 console lines dropped: they came faster than the output took them (the machine's console.log keeps them all)",
		"1 service-exit events dropped: they came faster than the output took them (the machine's console.log keeps them all)",
		"line 0", "line 1"}
	for i := range KeptReserve {
		want = append(want, fmt.Sprintf("exit %d", i))
	}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Errorf("got events\n%q\nwant\n%q", texts, want)
	}
}
