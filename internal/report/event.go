// Package report owns what a run tells: one stream of events (tests,
// subtests, commands, console lines, logs) and the sinks that render it:
// the terminal, events.jsonl, junit.xml and a self-contained report.html.
package report

import "time"

// Kind says what an event is.
type Kind string

// Event kinds.
const (
	TestStart    Kind = "test-start"    // Test
	TestEnd      Kind = "test-end"      // Test, Passed, Error, Duration
	SubtestStart Kind = "subtest-start" // Test, Path
	SubtestEnd   Kind = "subtest-end"   // Test, Path, Passed, Error, Duration
	Command      Kind = "command"       // Test, Path, Machine, Command, Exit, Stdout, Stderr, StdoutFile, StderrFile, Duration, Error (set when it failed the test)
	Console      Kind = "console"       // Test, Machine, Text (one line)
	Log          Kind = "log"           // Test, Path, Machine (may be empty), Text
	BootStart    Kind = "boot-start"    // Test, Machine
	Boot         Kind = "boot"          // Test, Machine, Duration (to the agent's hello), Text (the guest's uptime at each stage of its init), Error (when it did not boot)
	Capture      Kind = "capture"       // Test, File (a pcap file's path)
	ConsoleLog   Kind = "console-log"   // Test, Machine, File (the machine's whole console log)
)

// Event is one thing that happened in a run. Fields not listed for a Kind
// are empty.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    Kind      `json:"kind"`
	Test    string    `json:"test"`
	Path    []string  `json:"path,omitempty"` // subtest names, outermost first
	Machine string    `json:"machine,omitempty"`
	Command string    `json:"command,omitempty"`
	Exit    int       `json:"exit,omitempty"`
	Stdout  string    `json:"stdout,omitempty"`
	Stderr  string    `json:"stderr,omitempty"`
	// StdoutFile and StderrFile hold a command's whole output when it was
	// long; Stdout and Stderr then keep its head and tail (see Reporter.Emit).
	StdoutFile string `json:"stdout_file,omitempty"`
	StderrFile string `json:"stderr_file,omitempty"`
	Text       string `json:"text,omitempty"`
	File       string `json:"file,omitempty"`
	Passed     bool   `json:"passed,omitempty"`
	// Error is a failure's message; Where is the failing script line and
	// its Starlark backtrace, when there is one.
	Error    string        `json:"error,omitempty"`
	Where    string        `json:"where,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Quiet marks a console line the terminal does not show even with -v:
	// the script turned the console off with serial_stdout_off().
	Quiet bool `json:"quiet,omitempty"`
}

// Sink receives events. Event is called from one goroutine at a time (the
// Reporter serializes calls); Close writes what is left and is called once.
type Sink interface {
	Event(Event)
	Close() error
}
