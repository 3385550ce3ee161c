// Package report owns what a run tells: one stream of events (tests,
// subtests, commands, console lines, logs, network changes) and the sinks that render it:
// the terminal, events.jsonl, junit.xml and a self-contained report.html.
package report

import (
	"encoding/json"
	"time"
)

// Kind says what an event is.
type Kind string

// Event kinds.
const (
	TestStart    Kind = "test-start"    // Test; Cached when it will not run (its test-end says why); Shard and Host in a merged report
	TestEnd      Kind = "test-end"      // Test, Passed, Error, Where, Source, Duration; or Test, Skipped, Text (why it never started); or Test, Passed, Cached, Duration (the cached run's), Text (when and where it passed); Shard and Host in a merged report
	SubtestStart Kind = "subtest-start" // Test, Path
	SubtestEnd   Kind = "subtest-end"   // Test, Path, Passed, Error, Where, Source, Duration
	CommandStart Kind = "command-start" // Test, Path, Machine, Command: a command or call began (its Command event says how it ended)
	Command      Kind = "command"       // Test, Path, Machine, Command, Outcome, Exit, Timeout, Stdout, Stderr, StdoutFile, StderrFile, File (what copy_from_vm copied), Duration, Error (set when it failed the test)
	Console      Kind = "console"       // Test, Machine, Text (one line)
	Log          Kind = "log"           // Test, Path, Machine (may be empty), Text
	BootStart    Kind = "boot-start"    // Test, Machine
	Boot         Kind = "boot"          // Test, Machine, Duration (to the agent's hello), Text (the guest's uptime at each stage of its init), Error (when it did not boot)
	Stop         Kind = "stop"          // Test, Machine, Error (why it went down, when nobody asked: a panic, QEMU exited); no Error: it was stopped (shutdown, reboot, crash, the test's end) or powered itself off
	Capture      Kind = "capture"       // Test, File (a pcap file's path)
	ConsoleLog   Kind = "console-log"   // Test, Machine, File (the machine's whole console log)
	Network      Kind = "network"       // Test, Path, Machine (for block/unblock), Text (the call: link_fault(a, b, delay = 0.25)), Duration, Error (when it failed)
	Attach       Kind = "attach"        // Test (may be empty: a REPL's line), Machine, Text (what: "shell"): vmlab's terminal is handed to the machine; the terminal report writes nothing until the Detach
	Detach       Kind = "detach"        // Test, Machine, Text, Duration (how long it was attached): the terminal is vmlab's again
	ServiceExit  Kind = "service-exit"  // Test, Machine, Text (how: "service x exited with status 1", "service x was killed by signal 11 (segmentation fault); restarting"), Stdout (its last lines of output, when the agent kept them)
)

// Outcome is how a Command event's call ended: with an exit status, or
// without one, and then why.
type Outcome string

// Outcomes. An event without one (an older emitter's) reads as Exited, or
// as Errored when it failed with a zero Exit: never as "exit 0".
const (
	Exited      Outcome = "exited"       // the command exited; Exit holds its status
	Done        Outcome = "done"         // a call that runs no command (a wait, a copy) returned
	TimedOut    Outcome = "timed-out"    // it did not end in time; Timeout holds the limit
	MachineDown Outcome = "machine-down" // the machine stopped (panicked, QEMU exited) under it
	Interrupted Outcome = "interrupted"  // the run was stopped (Ctrl-C) or the test's deadline passed
	Errored     Outcome = "error"        // it failed otherwise; Error says how
)

// Event is one thing that happened in a run. Fields not listed for a Kind
// are empty.
type Event struct {
	Time    time.Time     `json:"time"`
	Kind    Kind          `json:"kind"`
	Test    string        `json:"test"`
	Path    []string      `json:"path,omitempty"` // subtest names, outermost first
	Machine string        `json:"machine,omitempty"`
	Command string        `json:"command,omitempty"`
	Outcome Outcome       `json:"outcome,omitempty"`
	Exit    int           `json:"exit,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	Stdout  string        `json:"stdout,omitempty"`
	Stderr  string        `json:"stderr,omitempty"`
	// StdoutFile and StderrFile hold a command's whole output when it was
	// long; Stdout and Stderr then keep its head and tail (see Reporter.Emit).
	StdoutFile string `json:"stdout_file,omitempty"`
	StderrFile string `json:"stderr_file,omitempty"`
	Text       string `json:"text,omitempty"`
	// Reason marks a Console line that says why the guest failed (a
	// panic, an oops, an OOM kill): the reports' console tails keep it.
	Reason bool   `json:"reason,omitempty"`
	File   string `json:"file,omitempty"`
	Passed bool   `json:"passed,omitempty"`
	// Skipped says a test never started (the run was interrupted first);
	// it neither passed nor failed.
	Skipped bool `json:"skipped,omitempty"`
	// Error is a failure's message; Where is the failing script line and
	// its Starlark backtrace, when there is one.
	Error string `json:"error,omitempty"`
	Where string `json:"where,omitempty"`
	// Source is the failing script line, "file:line: text".
	Source   string        `json:"source,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Quiet marks a console line the terminal does not show even with -v:
	// the script turned the console off with serial_stdout_off().
	Quiet bool `json:"quiet,omitempty"`
	// Cached marks a test-end of a test that did not run: it passed
	// before with the same inputs (the result cache, docs/cli.md).
	Cached bool `json:"cached,omitempty"`
	// Shard ("2/4") and Host name the shard and machine that ran a test,
	// on the test-start and test-end events of a merged report (vmlab
	// report merge).
	Shard string `json:"shard,omitempty"`
	Host  string `json:"host,omitempty"`
}

// MarshalJSON renders the event as encoding/json would, but that a
// test-end or subtest-end always says whether it passed: "passed": false
// is the point of a failed test's event, not a field to leave out.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // without this method
	if e.Kind != TestEnd && e.Kind != SubtestEnd {
		return json.Marshal(plain(e))
	}
	return json.Marshal(struct {
		plain
		Passed bool `json:"passed"` // shadows plain's, omitempty
	}{plain(e), e.Passed})
}

// Sink receives events. Event is called from one goroutine at a time (the
// Reporter serializes calls); Close writes what is left and is called once.
type Sink interface {
	Event(Event)
	Close() error
}
