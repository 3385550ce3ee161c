package report

import (
	"bytes"
	"encoding/xml"
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

// TestFailureOutputOnce: a machine error carries the machine's last
// console lines; the terminal and the HTML failure show them once, as the
// machine's tail, and JUnit's failure message is the error's first line.
func TestFailureOutputOnce(t *testing.T) {
	console := "[  2.1] web[88]: listening\n[  2.2] web[88]: crashed: out of cheese\n"
	timedOut := "vm: unit web: timed out after 10s" + consoleSection + strings.TrimSuffix(console, "\n")
	down := "vm: boot: machine is down: qemu exited" + consoleSection + strings.TrimSuffix(console, "\n")
	withConsole := func(evs ...Event) []Event {
		out := []Event{{Time: at(0), Kind: TestStart, Test: "t"}}
		for _, l := range lines(console) {
			out = append(out, Event{Time: at(1), Kind: Console, Test: "t", Machine: "vm", Text: l})
		}
		return append(out, evs...)
	}
	tests := []struct {
		name string
		evs  []Event
	}{
		{"a wait timed out", withConsole(
			Event{Time: at(11), Kind: Command, Test: "t", Machine: "vm", Command: `wait_for_unit("web")`,
				Outcome: TimedOut, Timeout: 10 * time.Second, Error: timedOut},
			Event{Time: at(12), Kind: TestEnd, Test: "t", Error: timedOut})},
		{"a subtest's wait timed out", withConsole(
			Event{Time: at(2), Kind: SubtestStart, Test: "t", Path: []string{"s"}},
			Event{Time: at(11), Kind: Command, Test: "t", Path: []string{"s"}, Machine: "vm", Command: `wait_for_unit("web")`,
				Outcome: TimedOut, Timeout: 10 * time.Second, Error: timedOut},
			Event{Time: at(11), Kind: SubtestEnd, Test: "t", Path: []string{"s"}, Error: timedOut},
			Event{Time: at(12), Kind: TestEnd, Test: "t", Error: timedOut})},
		{"the machine died booting", withConsole(
			Event{Time: at(3), Kind: Boot, Test: "t", Machine: "vm", Error: down},
			Event{Time: at(3), Kind: TestEnd, Test: "t", Error: down})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := renderAll(t, tt.evs)
			html := out["html"]
			box := html[strings.Index(html, `<div class="failure">`):]
			box = box[:strings.Index(box, "</div>")]
			for sink, text := range map[string]string{"terminal": out["terminal"], "verbose terminal's failure": failurePart(out["verbose"]), "html failure": box} {
				if n := strings.Count(text, "out of cheese"); n != 1 {
					t.Errorf("%s shows the console line %d times, want once:\n%s", sink, n, text)
				}
				if !strings.Contains(text, "timed out after 10s") && !strings.Contains(text, "machine is down") {
					t.Errorf("%s lacks the error:\n%s", sink, text)
				}
			}
			var suites junitSuites
			if err := xmlUnmarshal(out["junit"], &suites); err != nil {
				t.Fatal(err)
			}
			for _, c := range suites.Suites[0].Cases {
				if c.Failure != nil && strings.Contains(c.Failure.Message, "\n") {
					t.Errorf("%s: junit failure message has several lines: %q", c.Name, c.Failure.Message)
				}
			}
		})
	}
}

// failurePart is a verbose terminal report from its first FAIL line on:
// the lines before it show the console as it came.
func failurePart(s string) string {
	if i := strings.Index(s, "FAIL "); i >= 0 {
		return s[i:]
	}
	return s
}

func xmlUnmarshal(s string, v any) error { return xml.Unmarshal([]byte(s), v) }
