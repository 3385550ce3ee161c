package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// machineRun is a run with everything the progress block shows: two tests
// at once, boots that start, end and fail, steps under way, a machine
// shut down and one that went down.
func machineRun() []Event {
	ev := func(sec float64, e Event) Event {
		e.Time = at(sec)
		if e.Test == "" {
			e.Test = "web.test"
		}
		return e
	}
	return []Event{
		ev(0, Event{Kind: TestStart}),
		ev(0.01, Event{Kind: BootStart, Machine: "server"}),
		ev(0.02, Event{Kind: BootStart, Machine: "client"}),
		ev(0.5, Event{Kind: TestStart, Test: "web.test_other"}),
		ev(0.6, Event{Kind: BootStart, Test: "web.test_other", Machine: "db"}),
		ev(1, Event{Kind: Log, Text: "waiting for the machines"}),
		ev(2.5, Event{Kind: Boot, Machine: "server", Duration: 2490 * time.Millisecond, Text: "init 1.2s"}),
		ev(2.6, Event{Kind: Boot, Machine: "client", Duration: 2580 * time.Millisecond}),
		ev(3, Event{Kind: Boot, Test: "web.test_other", Machine: "db", Duration: 2400 * time.Millisecond,
			Error: "db: boot: timed out after 60s waiting for the agent\n--- last console lines ---\n[ 1.0] hello"}),
		ev(3, Event{Kind: TestEnd, Test: "web.test_other", Duration: 2500 * time.Millisecond,
			Error: "db: boot: timed out after 60s waiting for the agent"}),
		ev(3.1, Event{Kind: SubtestStart, Path: []string{"serve"}}),
		ev(3.1, Event{Kind: CommandStart, Path: []string{"serve"}, Machine: "server", Command: `wait_for_unit("web")`}),
		ev(5, Event{Kind: Command, Path: []string{"serve"}, Machine: "server", Command: `wait_for_unit("web")`, Outcome: Done, Duration: 1900 * time.Millisecond}),
		ev(5.1, Event{Kind: CommandStart, Path: []string{"serve"}, Machine: "server", Command: "shutdown()"}),
		ev(6, Event{Kind: Stop, Machine: "server"}),
		ev(6, Event{Kind: Command, Path: []string{"serve"}, Machine: "server", Command: "shutdown()", Outcome: Done, Duration: 900 * time.Millisecond}),
		ev(6.1, Event{Kind: SubtestEnd, Path: []string{"serve"}, Passed: true, Duration: 3 * time.Second}),
		ev(7, Event{Kind: Stop, Machine: "client", Error: `kernel panic "Attempted to kill init!"; qemu exited`}),
		ev(7, Event{Kind: Log, Text: "client: went down: qemu exited"}),
		ev(7.2, Event{Kind: CommandStart, Machine: "client", Command: "true"}),
		ev(7.3, Event{Kind: Command, Machine: "client", Command: "true", Outcome: MachineDown, Duration: 100 * time.Millisecond,
			Error: "client: command \"true\": machine is down"}),
		ev(7.4, Event{Kind: TestEnd, Duration: 7400 * time.Millisecond, Error: "client: command \"true\": machine is down"}),
	}
}

// TestTerminalPlainGolden: without a terminal (CI logs, pipes) the report
// is the plain text it always was, byte for byte: the files in testdata
// were written by the terminal report before it had a progress block and
// before there were stop events.
func TestTerminalPlainGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts TerminalOptions
	}{
		{"terminal-plain.golden", TerminalOptions{}},
		{"terminal-plain-verbose.golden", TerminalOptions{Verbose: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := emitAll(NewTerminal(&out, tt.opts), machineRun()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.name)
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("got\n%s\nwant (%s)\n%s", got, path, want)
			}
		})
	}
}
