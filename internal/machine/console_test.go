package machine_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// stuckTerminal is a terminal nobody reads (a paused terminal, a -json
// reader that stopped): every Write blocks until release is closed.
type stuckTerminal struct {
	release chan struct{}
	mu      sync.Mutex
	text    strings.Builder
}

func (w *stuckTerminal) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.Write(p)
}

// TestConsoleNeverBlocksTheGuest: a guest floods its console while the
// terminal is stuck. Its lines go to the reports through a report.Queue
// (as vmlab run wires OnConsole), so the console reader never waits: the
// guest prints everything and exits, the machine reports that at once, and
// console.log holds every line. Wired straight to the Reporter, as before,
// the reader blocked in the terminal's lock, the guest blocked on a full
// pipe, and killing QEMU waited forever for its console to drain.
func TestConsoleNeverBlocksTheGuest(t *testing.T) {
	term := &stuckTerminal{release: make(chan struct{})}
	rep := report.New(report.NewTerminal(term, report.TerminalOptions{Verbose: true}))
	q := report.NewQueue(rep.Emit, report.ConsoleQueueSize)
	q.Emit(report.Event{Kind: report.TestStart, Test: "t"}) // its header line blocks
	m := fakeMachineConfig(t, "flood", machine.Config{OnConsole: func(l machine.Line) {
		q.Emit(report.Event{Kind: report.Console, Test: "t", Machine: "fake", Text: l.Text})
	}})

	started := make(chan error, 1)
	go func() { started <- m.Start(t.Context()) }()
	select {
	case err := <-started:
		var de *machine.DownError
		if !errors.As(err, &de) {
			t.Errorf("got %v, want a DownError (the guest exited)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Start still waits 20 s after the guest began to print: the console reader is blocked")
	}
	log, err := os.ReadFile(filepath.Join(m.Dir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(log), "of a chatty guest\n"); got != floodLines {
		t.Errorf("console.log has %d lines, want all %d", got, floodLines)
	}
	last := fmt.Sprintf("console line %d of", floodLines-1)
	if !strings.Contains(string(log), last) {
		t.Errorf("console.log lacks the last line %q", last)
	}

	close(term.release)
	q.Close()
	rep.Close()
	term.mu.Lock()
	defer term.mu.Unlock()
	if !strings.Contains(term.text.String(), "console lines dropped:") {
		t.Errorf("the terminal does not say lines were dropped:\n%.2000s", term.text.String())
	}
}
