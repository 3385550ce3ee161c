package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
				if c.Failure != nil && strings.Count(c.Failure.Text, c.Failure.Message) != 1 {
					t.Errorf("%s: junit failure text repeats the error:\n%s", c.Name, c.Failure.Text)
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

// TestJUnitSuitesPerFile: one testsuite per file, classname the file and
// name the test or subtest (not "flags.test_pass.flags.test_pass"), and
// system-out holds the commands and logs, not only console lines.
func TestJUnitSuitesPerFile(t *testing.T) {
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "flags.test_pass"},
		{Time: at(1), Kind: Command, Test: "flags.test_pass", Machine: "vm", Command: "true", Outcome: Exited, Duration: time.Second},
		{Time: at(2), Kind: Log, Test: "flags.test_pass", Text: "all set"},
		{Time: at(3), Kind: TestEnd, Test: "flags.test_pass", Passed: true, Duration: 3 * time.Second},
		{Time: at(1), Kind: TestStart, Test: "web.v2.test_get"},
		{Time: at(2), Kind: SubtestStart, Test: "web.v2.test_get", Path: []string{"fetch"}},
		{Time: at(2.5), Kind: SubtestEnd, Test: "web.v2.test_get", Path: []string{"fetch"}, Passed: true, Duration: 500 * time.Millisecond},
		{Time: at(5), Kind: TestEnd, Test: "web.v2.test_get", Error: "boom", Duration: 4 * time.Second},
	}
	var got junitSuites
	if err := xmlUnmarshal(renderAll(t, evs)["junit"], &got); err != nil {
		t.Fatal(err)
	}
	type row struct{ suite, classname, name string }
	var rows []row
	for _, s := range got.Suites {
		for _, c := range s.Cases {
			rows = append(rows, row{s.Name, c.Classname, c.Name})
		}
	}
	want := []row{{"flags", "flags", "test_pass"}, {"web.v2", "web.v2", "test_get"}, {"web.v2", "web.v2", "test_get/fetch"}}
	if len(rows) != len(want) {
		t.Fatalf("got testcases %v, want %v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("testcase %d: got %+v, want %+v", i, rows[i], want[i])
		}
	}
	if len(got.Suites) == 2 {
		if s := got.Suites[1]; s.Tests != 2 || s.Failures != 1 || s.Time != "4.000" {
			t.Errorf("suite web.v2: got %d tests, %d failures, time %s; want 2, 1, 4.000", s.Tests, s.Failures, s.Time)
		}
	}
	if got.Tests != 3 || got.Failures != 1 || got.Time != "5.000" {
		t.Errorf("testsuites: got %d tests, %d failures, time %s; want 3, 1, 5.000", got.Tests, got.Failures, got.Time)
	}
	out := systemOut(got.Suites[0].Cases[0])
	for _, w := range []string{"+1.00s vm$ true (exit 0, 1.00s)\n", "+2.00s all set\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("system-out lacks %q:\n%s", w, out)
		}
	}
}

// TestJSONPassedFalse: a failed test's and subtest's end event says
// "passed": false; other events carry no passed field.
func TestJSONPassedFalse(t *testing.T) {
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "t"},
		{Time: at(1), Kind: SubtestEnd, Test: "t", Path: []string{"s"}, Error: "boom"},
		{Time: at(2), Kind: TestEnd, Test: "t", Error: "boom"},
	}
	got := strings.Split(strings.TrimSpace(renderAll(t, evs)["jsonl"]), "\n")
	want := []bool{false, true, true}
	for i, line := range got {
		if has := strings.Contains(line, `"passed":false`); has != want[i] {
			t.Errorf("line %d: got %s, want passed:false %v", i+1, line, want[i])
		}
	}
}

// TestNetworkEvents: partition, heal, link_fault, vlan_fault, block and
// unblock show on the timeline of every sink, inside their subtest.
func TestNetworkEvents(t *testing.T) {
	calls := []Event{
		{Text: "link_fault(a, b, delay = 0.25)"},
		{Text: "vlan_fault(2, loss = 0.1)"},
		{Text: "partition([a], [b, c])"},
		{Text: "heal()"},
		{Text: "a.block(2)", Machine: "a"},
		{Text: "a.unblock()", Machine: "a"},
		{Text: "link_fault(a, c)", Error: "fault a -> c: they share no VLAN"},
	}
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "t"},
		{Time: at(1), Kind: SubtestStart, Test: "t", Path: []string{"slow link"}},
	}
	for i, c := range calls {
		c.Time, c.Kind, c.Test, c.Path = at(2+float64(i)), Network, "t", []string{"slow link"}
		evs = append(evs, c)
	}
	evs = append(evs,
		Event{Time: at(10), Kind: SubtestEnd, Test: "t", Path: []string{"slow link"}, Error: "fault a -> c: they share no VLAN"},
		Event{Time: at(10), Kind: TestEnd, Test: "t", Error: "fault a -> c: they share no VLAN"})
	out := renderAll(t, evs)
	for _, c := range calls {
		text := c.Text
		wants := map[string]string{
			"terminal": "    network: " + text,
			"html":     "network: <code>" + htmlEscape(text) + "</code>",
			"junit":    "network: " + text, // CDATA keeps it as it is
			"jsonl":    `"kind":"network"`,
		}
		for sink, want := range wants {
			if !strings.Contains(out[sink], want) {
				t.Errorf("%s lacks %q:\n%s", sink, want, out[sink])
			}
		}
	}
	failed := "network: link_fault(a, c) (error: fault a -> c: they share no VLAN)"
	for _, sink := range []string{"terminal", "junit"} {
		if !strings.Contains(out[sink], failed) {
			t.Errorf("%s lacks %q:\n%s", sink, failed, out[sink])
		}
	}
	if want := `<div class="fail">fault a -&gt; c: they share no VLAN</div>`; !strings.Contains(out["html"], want) {
		t.Errorf("html lacks %q", want)
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestProgressShowsStep: on a terminal the block shows the step under
// way (command or call, elapsed) beside its machine until its Command
// event, each machine named with its test when tests run at once.
func TestProgressShowsStep(t *testing.T) {
	lt := newLiveTerm(t, TerminalOptions{Width: 200})
	steps := []struct {
		at   float64
		ev   Event
		want []string // the screen's last lines after it
	}{
		{0, Event{Kind: TestStart, Test: "a"}, []string{"RUN  a"}},
		{0, Event{Kind: CommandStart, Test: "a", Machine: "vm", Command: `wait_for_unit("web")`}, []string{"RUN  a", `vm  $ wait_for_unit("web") 0.0s`}},
		{50, Event{Kind: Log, Test: "a", Text: "tick"}, []string{"  tick", `vm  $ wait_for_unit("web") 50.0s`}},
		{50, Event{Kind: TestStart, Test: "b"}, []string{"  tick", `vm  $ wait_for_unit("web") 50.0s`}},
		{51, Event{Kind: BootStart, Test: "b", Machine: "db"}, []string{"  tick", `a/vm  $ wait_for_unit("web") 51.0s`, "b/db  booting 0.0s"}},
		{52, Event{Kind: Command, Test: "a", Machine: "vm", Command: `wait_for_unit("web")`, Outcome: Done}, []string{"  tick", "db  booting 1.0s"}},
		{53, Event{Kind: CommandStart, Test: "b", Machine: "db", Command: "sleep 5\necho done"}, []string{"  tick", "db  booting 2.0s   $ sleep 5 ... 0.0s"}},
		{54, Event{Kind: TestEnd, Test: "b", Error: "stopped"}, []string{"RUN  a", "  tick"}},
	}
	for _, st := range steps {
		lt.emit(st.at, st.ev)
		lt.wantBlock(fmt.Sprintf("after %s at %vs", st.ev.Kind, st.at), st.want...)
	}
	lt.sink.Close()
}

// TestLongStepInPlainLog: without a progress block, a step that runs long
// gets a line at 10 s and each minute after, under its subtest; one that
// ended in time gets none.
func TestLongStepInPlainLog(t *testing.T) {
	var out bytes.Buffer
	sink := NewTerminal(&out, TerminalOptions{})
	term := sink.(*terminal)
	var timers []func()
	var afters []time.Duration
	term.after = func(d time.Duration, f func()) func() bool {
		i := len(timers)
		timers = append(timers, f)
		afters = append(afters, d)
		return func() bool { timers[i] = nil; return true }
	}
	fire := func() { // the latest timer, as time.AfterFunc would
		t.Helper()
		f := timers[len(timers)-1]
		if f == nil {
			t.Fatal("the timer was stopped")
		}
		f()
	}
	sink.Event(Event{Kind: TestStart, Test: "t"})
	sink.Event(Event{Kind: CommandStart, Test: "t", Machine: "vm", Command: "true"})
	sink.Event(Event{Kind: Command, Test: "t", Machine: "vm", Command: "true", Outcome: Exited})
	if timers[0] != nil {
		t.Error("the timer of a step that ended still runs")
	}
	sink.Event(Event{Kind: SubtestStart, Test: "t", Path: []string{"slow"}})
	sink.Event(Event{Kind: CommandStart, Test: "t", Path: []string{"slow"}, Machine: "vm", Command: `wait_for_unit("web")`})
	fire()
	fire()
	sink.Event(Event{Kind: Command, Test: "t", Path: []string{"slow"}, Machine: "vm", Command: `wait_for_unit("web")`, Outcome: Done})
	sink.Event(Event{Kind: SubtestEnd, Test: "t", Path: []string{"slow"}, Passed: true})
	sink.Event(Event{Kind: TestEnd, Test: "t", Passed: true})
	sink.Close()
	want := "RUN  t\n" +
		"  RUN  slow\n" +
		"    vm$ wait_for_unit(\"web\"): still running after 10s\n" +
		"    vm$ wait_for_unit(\"web\"): still running after 1m10s\n" +
		"  PASS slow (0.00s)\n" +
		"PASS t (0.00s)\n" +
		"1 passed, 0 failed\n"
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if want := []time.Duration{10 * time.Second, 10 * time.Second, time.Minute, time.Minute}; !slices.Equal(afters, want) {
		t.Errorf("timers set for %v, want %v", afters, want)
	}
	if timers[len(timers)-1] != nil {
		t.Error("the last timer still runs after the step ended")
	}
}

// TestSourceAndCopies: report.html shows the failing script line's text
// and links what copy_from_vm copied; JUnit names both too.
func TestSourceAndCopies(t *testing.T) {
	dir := t.TempDir()
	copied := filepath.Join(dir, "t", "hostname")
	src := `fail.star:7: vm.succeed("grep -q ok /etc/state")`
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "t"},
		{Time: at(1), Kind: Command, Test: "t", Machine: "vm", Command: `copy_from_vm("/etc/hostname")`, Outcome: Done, File: copied},
		{Time: at(2), Kind: TestEnd, Test: "t", Error: "boom", Where: "Traceback (most recent call last):\n  fail.star:7:15: in test\n", Source: src},
	}
	path := filepath.Join(dir, "report.html")
	if err := emitAll(NewHTML(path), evs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`failing line: <code class="src">fail.star:7: vm.succeed(&#34;grep -q ok /etc/state&#34;)</code>`,
		`copied to <a href="./t/hostname">t/hostname</a>`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	out := renderAll(t, evs)
	for _, want := range []string{"failing line: " + src, "copied to " + copied} {
		if !strings.Contains(out["junit"], want) {
			t.Errorf("junit.xml lacks %q:\n%s", want, out["junit"])
		}
	}
	if want := "    copied to " + copied + "\n"; !strings.Contains(out["verbose"], want) {
		t.Errorf("verbose terminal lacks %q:\n%s", want, out["verbose"])
	}
	if want := "  line: " + src + "\n"; !strings.Contains(out["terminal"], want) {
		t.Errorf("terminal lacks %q:\n%s", want, out["terminal"])
	}
}

// TestScreenshotSaved: a screenshot's file is "saved" on the terminal, as
// in report.html and junit.xml, not "copied to" as copy_from_vm's.
func TestScreenshotSaved(t *testing.T) {
	shot := filepath.Join(t.TempDir(), "t", "console.png")
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "t"},
		{Time: at(1), Kind: Command, Test: "t", Machine: "vm", Command: `screenshot("console")`, Outcome: Done, File: shot},
		{Time: at(2), Kind: TestEnd, Test: "t"},
	}
	out := renderAll(t, evs)
	if want := "    saved " + shot + "\n"; !strings.Contains(out["verbose"], want) {
		t.Errorf("verbose terminal lacks %q:\n%s", want, out["verbose"])
	}
}
