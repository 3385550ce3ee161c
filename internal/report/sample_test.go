package report

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is the time sec seconds into the run.
func at(sec float64) time.Time { return start.Add(time.Duration(sec * float64(time.Second))) }

const (
	failCmd   = "echo about to fail; echo oops >&2; exit 5"
	failError = `vm: command "echo about to fail; echo oops >&2; exit 5" failed with exit status 5`
	failWhere = "Traceback (most recent call last):\n" +
		"  fail.star:4:12: in test_fail\n" +
		"  <builtin>: in subtest\n" +
		"  fail.star:4:48: in lambda\n" +
		"Error in succeed: " + failError
)

// sampleRun is a run of two tests: test_pass boots vm and passes a
// subtest; test_fail fails in subtest "a step" on a command whose stdout
// tries to inject a script. Capture files are under dir.
func sampleRun(dir string) []Event {
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "test_pass"},
		{Time: at(0.1), Kind: Console, Test: "test_pass", Machine: "vm", Text: "Welcome to \x1b[1mNixOS\x1b[0m!\r"},
		{Time: at(2.5), Kind: Boot, Test: "test_pass", Machine: "vm", Duration: 2500 * time.Millisecond},
		{Time: at(2.6), Kind: SubtestStart, Test: "test_pass", Path: []string{"hostname"}},
		{Time: at(2.62), Kind: Command, Test: "test_pass", Path: []string{"hostname"}, Machine: "vm", Command: "hostname", Stdout: "vm\n", Duration: 20 * time.Millisecond},
		{Time: at(2.63), Kind: SubtestEnd, Test: "test_pass", Path: []string{"hostname"}, Passed: true, Duration: 30 * time.Millisecond},
		{Time: at(2.7), Kind: Log, Test: "test_pass", Text: "done"},
		{Time: at(3.2), Kind: Capture, Test: "test_pass", File: filepath.Join(dir, "test_pass", "vlan1.pcap")},
		{Time: at(3.21), Kind: TestEnd, Test: "test_pass", Passed: true, Duration: 3210 * time.Millisecond},
		{Time: at(4), Kind: TestStart, Test: "test_fail"},
	}
	for i := 1; i <= 25; i++ {
		evs = append(evs, Event{Time: at(4.1), Kind: Console, Test: "test_fail", Machine: "vm", Text: fmt.Sprintf("boot line %d", i)})
	}
	step := []string{"a step"}
	return append(evs,
		Event{Time: at(7), Kind: SubtestStart, Test: "test_fail", Path: step},
		Event{Time: at(7.01), Kind: Log, Test: "test_fail", Path: step, Machine: "vm", Text: "about to run"},
		Event{Time: at(7.04), Kind: Command, Test: "test_fail", Path: step, Machine: "vm", Command: failCmd,
			Exit: 5, Stdout: "<script>alert(1)</script>\n", Stderr: "oops\n", Duration: 30 * time.Millisecond, Error: failError},
		Event{Time: at(7.05), Kind: SubtestEnd, Test: "test_fail", Path: step, Error: failError, Where: failWhere, Duration: 50 * time.Millisecond},
		Event{Time: at(7.4), Kind: TestEnd, Test: "test_fail", Error: failError, Where: failWhere, Duration: 3400 * time.Millisecond},
	)
}

// emitAll sends evs to sink and closes it.
func emitAll(sink Sink, evs []Event) error {
	for _, e := range evs {
		sink.Event(e)
	}
	return sink.Close()
}

// recorder is a sink that keeps what it gets.
type recorder struct {
	events []Event
	closes int
	err    error // what Close returns
}

func (r *recorder) Event(e Event) { r.events = append(r.events, e) }

func (r *recorder) Close() error {
	r.closes++
	return r.err
}

// failingWriter fails every write.
type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }
