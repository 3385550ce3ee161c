package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeJUnit renders evs with the JUnit sink, checks the file is well
// formed XML, and returns it decoded.
func writeJUnit(t *testing.T, evs []Event) junitSuites {
	t.Helper()
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := emitAll(NewJUnit(path), evs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Walk every token: the decoder stops at the first thing that is not
	// well formed.
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("junit.xml is not well formed: %v\n%s", err, data)
		}
	}
	var got junitSuites
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Suites) != 1 {
		t.Fatalf("got %d testsuites, want 1", len(got.Suites))
	}
	return got
}

func TestJUnit(t *testing.T) {
	got := writeJUnit(t, sampleRun("/out"))
	suite := got.Suites[0]
	if suite.Tests != 4 || suite.Failures != 2 || got.Tests != 4 || got.Failures != 2 {
		t.Errorf("got tests %d/%d, failures %d/%d; want 4 and 2", got.Tests, suite.Tests, got.Failures, suite.Failures)
	}
	if suite.Time != "7.400" {
		t.Errorf("got suite time %s, want 7.400 (first start to last end)", suite.Time)
	}
	cases := make(map[string]junitCase)
	var names []string
	for _, c := range suite.Cases {
		cases[c.Name] = c
		names = append(names, c.Name)
	}
	if want := "test_pass test_pass/hostname test_fail test_fail/a step"; strings.Join(names, " ") != want {
		t.Errorf("got testcases %q, want %q", names, want)
	}
	tests := []struct {
		name      string
		time      string
		failure   []string // in the failure's text; nil: passed
		systemOut []string
	}{
		{"test_pass", "3.210", nil, []string{"+2.60s RUN  hostname\n  +2.62s vm$ hostname (exit 0, 0.02s)\n", "+2.63s PASS hostname", "+2.70s done\n", "vm: Welcome to NixOS!\n"}},
		{"test_pass/hostname", "0.030", nil, []string{"+2.62s vm$ hostname (exit 0, 0.02s)\n    stdout:\n      vm\n"}},
		{"test_fail", "3.400", []string{failError, "fail.star:4:48: in lambda", "vm$ " + failCmd, "exit 5", "<script>alert(1)</script>", "stderr:\noops"}, []string{"vm: boot line 1\n", "vm: boot line 25\n"}},
		{"test_fail/a step", "0.050", []string{failError, "fail.star:4:48", "oops"}, []string{"+3.01s vm: about to run\n"}},
	}
	for _, tt := range tests {
		c := cases[tt.name]
		if c.Time != tt.time {
			t.Errorf("%s: got time %s, want %s", tt.name, c.Time, tt.time)
		}
		switch {
		case tt.failure == nil && c.Failure != nil:
			t.Errorf("%s: got failure %q, want none", tt.name, c.Failure.Message)
		case tt.failure != nil && c.Failure == nil:
			t.Errorf("%s: got no failure, want one", tt.name)
		case tt.failure != nil:
			if c.Failure.Message != failError {
				t.Errorf("%s: got failure message %q, want %q", tt.name, c.Failure.Message, failError)
			}
			for _, w := range tt.failure {
				if !strings.Contains(c.Failure.Text, w) {
					t.Errorf("%s: got failure text\n%s\nwant it to contain %q", tt.name, c.Failure.Text, w)
				}
			}
		}
		if tt.systemOut == nil && c.SystemOut != nil {
			t.Errorf("%s: got system-out %q, want none", tt.name, c.SystemOut.Text)
		}
		for _, w := range tt.systemOut {
			if got := systemOut(c); !strings.Contains(got, w) {
				t.Errorf("%s: got system-out\n%s\nwant it to contain %q", tt.name, got, w)
			}
		}
	}
}

func TestJUnitEdges(t *testing.T) {
	line := strings.Repeat("x", 1000)
	var chatty []Event
	chatty = append(chatty, Event{Kind: TestStart, Test: "chatty"})
	for i := range 2100 { // about 2 MiB
		chatty = append(chatty, Event{Kind: Console, Test: "chatty", Machine: "vm", Text: fmt.Sprintf("%04d %s", i, line)})
	}
	chatty = append(chatty, Event{Kind: TestEnd, Test: "chatty", Passed: true})

	tests := []struct {
		name   string
		events []Event
		check  func(t *testing.T, c junitCase)
	}{{
		name:   "console capped at 1 MiB, newest kept",
		events: chatty,
		check: func(t *testing.T, c junitCase) {
			out := systemOut(c)
			if len(out) > 1<<20+100 {
				t.Errorf("got %d bytes of system-out, want at most 1 MiB", len(out))
			}
			if !strings.HasPrefix(out, "[") || !strings.Contains(out, "dropped]") {
				t.Errorf("got system-out starting %.60q, want a note of what was dropped", out)
			}
			if !strings.Contains(out, "vm: 2099 x") {
				t.Errorf("got system-out without the last line")
			}
		},
	}, {
		name: "control characters kept out of the XML",
		events: []Event{
			{Kind: TestStart, Test: "t"},
			{Kind: Console, Test: "t", Machine: "vm", Text: "\x00\x1b[31mred\x1b[0m\x07 \u0085\xff\uffff ]]> end"},
			{Kind: TestEnd, Test: "t", Error: "bad \x01 byte"},
		},
		check: func(t *testing.T, c junitCase) {
			if want := "vm: red \uFFFD ]]> end\n"; systemOut(c) != want {
				t.Errorf("got system-out %q, want %q", systemOut(c), want)
			}
			if want := "bad  byte"; c.Failure == nil || c.Failure.Message != want {
				t.Errorf("got failure %+v, want message %q", c.Failure, want)
			}
		},
	}, {
		name:   "a test that never ends fails",
		events: []Event{{Time: at(0), Kind: TestStart, Test: "t"}, {Time: at(2), Kind: Log, Test: "t", Text: "stuck"}},
		check: func(t *testing.T, c junitCase) {
			if c.Failure == nil || c.Failure.Message != "did not finish" || c.Time != "2.000" {
				t.Errorf("got failure %+v, time %s; want \"did not finish\" after 2.000", c.Failure, c.Time)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeJUnit(t, tt.events)
			tt.check(t, got.Suites[0].Cases[0])
		})
	}
}

func systemOut(c junitCase) string {
	if c.SystemOut == nil {
		return ""
	}
	return c.SystemOut.Text
}

func TestJUnitClose(t *testing.T) {
	sink := NewJUnit(filepath.Join(t.TempDir(), "missing", "junit.xml"))
	err := emitAll(sink, sampleRun("/out"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
	if again := sink.Close(); again != err {
		t.Errorf("second Close: got %v, want %v", again, err)
	}
}

// A command's output is in the failure once, under the command, even when
// the error carries it too (as machine.ExitError's does).
func TestJUnitOutputOnce(t *testing.T) {
	errText := "vm: command \"false\" failed with exit status 1\n--- stdout ---\nthe output\n"
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "t"},
		{Time: at(1), Kind: Command, Test: "t", Machine: "vm", Command: "false", Exit: 1, Stdout: "the output\n", Error: errText},
		{Time: at(2), Kind: TestEnd, Test: "t", Error: errText, Where: "Traceback (most recent call last):\n  t.star:3:5: in test\n"},
	}
	f := writeJUnit(t, evs).Suites[0].Cases[0].Failure
	if f == nil {
		t.Fatal("no failure")
	}
	if f.Message != `vm: command "false" failed with exit status 1` {
		t.Errorf("message %q, want the error's first line", f.Message)
	}
	if n := strings.Count(f.Text, "the output"); n != 1 {
		t.Errorf("the output is in the failure %d times, want once:\n%s", n, f.Text)
	}
	if !strings.Contains(f.Text, "vm$ false\nexit 1\nstdout:\nthe output") || !strings.Contains(f.Text, "t.star:3:5") {
		t.Errorf("failure text:\n%s", f.Text)
	}
}
