package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// cancelOnStart is a sink that interrupts the run (as Ctrl-C does) when
// the first test starts.
type cancelOnStart struct{ cancel context.CancelCauseFunc }

func (c cancelOnStart) Event(e report.Event) {
	if e.Kind == report.TestStart {
		c.cancel(&interrupted{os.Interrupt})
	}
}

func (cancelOnStart) Close() error { return nil }

// TestInterruptSkipsWaitingTests: Ctrl-C while the first of three tests
// runs (-j 1). The two waiting tests never start: each is one TestEnd that
// says skipped, in events, JUnit (<skipped/>), report.html and the terminal. Before, the
// second test still started (and failed with "context canceled") and the
// third vanished from the reports. VM-free: the tests use no machine.
func TestInterruptSkipsWaitingTests(t *testing.T) {
	src := "def test_a():\n    pass\n\ndef test_b():\n    pass\n\ndef test_c():\n    pass\n"
	f, err := script.Load("three.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := selectJobs([]*script.File{f}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	dir := t.TempDir()
	junit, html := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "report.html")
	var events, terminal bytes.Buffer
	rep := report.New(cancelOnStart{cancel}, report.NewJSONLines(&events),
		report.NewFiles(report.JUnitFile(junit), report.HTMLFile(html)), report.NewTerminal(&terminal, report.TerminalOptions{}))
	runJobs(ctx, jobs, 1, time.Minute, nil, dir, rep)
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runExit(ctx, results{}, nil); got != 130 {
		t.Errorf("got exit %d, want 130", got)
	}

	var kinds []string // "test kind[ skipped]", in order
	dec := json.NewDecoder(&events)
	for dec.More() {
		var e report.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == report.TestStart || e.Kind == report.TestEnd {
			k := e.Test + " " + string(e.Kind)
			if e.Skipped {
				k += " skipped: " + e.Text
			}
			kinds = append(kinds, k)
		}
	}
	for _, want := range []string{
		"three.test_b test-end skipped: not started: interrupted by Ctrl-C (SIGINT)",
		"three.test_c test-end skipped: not started: interrupted by Ctrl-C (SIGINT)",
	} {
		if !slices.Contains(kinds, want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(kinds, "\n"))
		}
	}
	for _, never := range []string{"three.test_b test-start", "three.test_c test-start"} {
		if slices.Contains(kinds, never) {
			t.Errorf("events hold %q: a test started after the interrupt", never)
		}
	}

	x, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`skipped="2"`, `<skipped message="not started: interrupted by Ctrl-C (SIGINT)">`} {
		if !strings.Contains(string(x), want) {
			t.Errorf("junit.xml lacks %q:\n%s", want, x)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	// test_a was interrupted as it started: it passed, or failed on the
	// interrupt when that reached its thread first (both happen).
	for _, want := range []string{`<span class="skip">SKIP</span>`, " failed, 2 skipped"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, want := range []string{"SKIP three.test_b (not started: interrupted by Ctrl-C (SIGINT))", ", 2 skipped\n"} {
		if !strings.Contains(terminal.String(), want) {
			t.Errorf("terminal lacks %q:\n%s", want, terminal.String())
		}
	}
	if strings.Contains(terminal.String(), "RUN  three.test_c") {
		t.Errorf("terminal shows the skipped test running:\n%s", terminal.String())
	}
}

// TestSelectJobsRefusesSameTestID: a/x.star and b/x.star both give
// "x.test_a"; the run would share one output directory, one cached result
// and one report entry between them. Before, both were selected (and a
// failing test was reported "PASS (cached)" with the other's result).
func TestSelectJobsRefusesSameTestID(t *testing.T) {
	src := "def test_a():\n    pass\n"
	a, err := script.Load(filepath.Join("a", "x.star"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	b, err := script.Load(filepath.Join("b", "x.star"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = selectJobs([]*script.File{a, b}, "")
	if err == nil {
		t.Fatal("got no error, want one naming a/x.star and b/x.star")
	}
	for _, want := range []string{"a/x.star", "b/x.star", "x.test_a", "rename"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The same base name with no shared test is fine.
	c, err := script.Load(filepath.Join("c", "x.star"), []byte("def test_b():\n    pass\n"))
	if err != nil {
		t.Fatal(err)
	}
	if jobs, err := selectJobs([]*script.File{a, c}, ""); err != nil || len(jobs) != 2 {
		t.Errorf("a/x.star test_a + c/x.star test_b: got %d jobs, %v; want 2, no error", len(jobs), err)
	}
}
