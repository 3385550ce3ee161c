package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// renderAll renders evs with every sink and returns each one's output by
// name: terminal (not verbose), verbose terminal, html, junit, jsonl.
func renderAll(t *testing.T, evs []Event) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := make(map[string]string)
	for name, opts := range map[string]TerminalOptions{"terminal": {}, "verbose": {Verbose: true}} {
		var buf bytes.Buffer
		if err := emitAll(NewTerminal(&buf, opts), evs); err != nil {
			t.Fatal(err)
		}
		out[name] = buf.String()
	}
	var jsonl bytes.Buffer
	if err := emitAll(NewJSONLines(&jsonl), evs); err != nil {
		t.Fatal(err)
	}
	out["jsonl"] = jsonl.String()
	files := map[string]func(string) Sink{"html": NewHTML, "junit": NewJUnit}
	for name, sink := range files {
		path := filepath.Join(dir, name)
		if err := emitAll(sink(path), evs); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(data)
	}
	return out
}

// TestOutcomes: a call that returned no exit status says what happened
// instead in every sink, never "exit 0".
func TestOutcomes(t *testing.T) {
	tests := []struct {
		name string
		cmd  Event
		want string
	}{
		{"wait timed out", Event{Command: `wait_for_unit("web")`, Outcome: TimedOut, Timeout: 10 * time.Second,
			Error: "vm: unit web: timed out after 10s"}, "timed out after 10s"},
		{"port timed out", Event{Command: "wait_for_open_port(80)", Outcome: TimedOut, Timeout: 5 * time.Second,
			Error: "vm: port 80: timed out after 5s"}, "timed out after 5s"},
		{"machine panicked", Event{Command: "echo c > /proc/sysrq-trigger", Outcome: MachineDown,
			Error: "vm: command: machine is down: qemu exited"}, "machine down"},
		{"interrupted", Event{Command: "sleep 100", Outcome: Interrupted,
			Error: "vm: command sleep 100: stopped: interrupted"}, "interrupted"},
		{"failed otherwise", Event{Command: `copy_from_vm("/x")`, Outcome: Errored,
			Error: "vm: copy /x: no such file"}, "error"},
		{"exited", Event{Command: "false", Outcome: Exited, Exit: 1,
			Error: `vm: command "false" failed with exit status 1`}, "exit 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := tt.cmd
			cmd.Time, cmd.Kind, cmd.Test, cmd.Machine, cmd.Duration = at(11), Command, "t", "vm", 10*time.Second
			evs := []Event{
				{Time: at(0), Kind: TestStart, Test: "t"},
				cmd,
				{Time: at(12), Kind: TestEnd, Test: "t", Error: cmd.Error, Duration: 12 * time.Second},
			}
			out := renderAll(t, evs)
			for _, sink := range []string{"terminal", "html", "junit"} {
				if !strings.Contains(out[sink], tt.want) {
					t.Errorf("%s lacks %q:\n%s", sink, tt.want, out[sink])
				}
				if strings.Contains(out[sink], "exit 0") {
					t.Errorf("%s says exit 0:\n%s", sink, out[sink])
				}
			}
			if want := `"outcome":"` + string(tt.cmd.Outcome) + `"`; !strings.Contains(out["jsonl"], want) {
				t.Errorf("events.jsonl lacks %s:\n%s", want, out["jsonl"])
			}
		})
	}
}
