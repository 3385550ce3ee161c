package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cachedRun is a test reported from the result cache, then one that ran.
func cachedRun() []Event {
	return []Event{
		{Time: at(0), Kind: TestStart, Test: "pass.test_a", Cached: true},
		{Time: at(0), Kind: TestEnd, Test: "pass.test_a", Passed: true, Cached: true, Duration: 12300 * time.Millisecond,
			Text: "passed 2026-12-01 18:00:00 on runner-1 (vmlab v1)"},
		{Time: at(0.1), Kind: TestStart, Test: "pass.test_b"},
		{Time: at(2), Kind: TestEnd, Test: "pass.test_b", Passed: true, Duration: 1900 * time.Millisecond},
	}
}

// TestCachedReports: the terminal, JUnit and HTML reports show a cached
// test as passed and cached, with its cached run's duration.
func TestCachedReports(t *testing.T) {
	var term bytes.Buffer
	dir := t.TempDir()
	r := New(NewTerminal(&term, TerminalOptions{}), NewJUnit(filepath.Join(dir, "junit.xml")), NewHTML(filepath.Join(dir, "report.html")))
	for _, e := range cachedRun() {
		r.Emit(e)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	out := term.String()
	for _, want := range []string{"PASS pass.test_a (cached, 12.30s)", "RUN  pass.test_b", "PASS pass.test_b (1.90s)", "\n2 passed (1 cached), 0 failed\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal: want %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "RUN  pass.test_a") {
		t.Errorf("terminal: a RUN line for the cached test:\n%s", out)
	}
	for file, want := range map[string]string{
		"junit.xml":   "cached: not run, passed 2026-12-01 18:00:00 on runner-1",
		"report.html": `title="passed 2026-12-01 18:00:00 on runner-1 (vmlab v1)">(cached)`,
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: want %q (err %v):\n%s", file, want, err, b)
		}
	}
	// The cached test's section says where its artifacts are not; the
	// test that ran has no such note.
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	note := "are those of that run, and not in this directory: <code>vmlab run -count=1</code> runs it again and keeps them here."
	if n := strings.Count(string(html), note); n != 1 {
		t.Errorf("report.html: got %d notes %q, want 1, for the cached test:\n%s", n, note, html)
	}
	a, b, j := strings.Index(string(html), `<section id="test-1">`), strings.Index(string(html), `<section id="test-2">`), strings.Index(string(html), note)
	if a < 0 || j < a || j > b {
		t.Errorf("report.html: want the note in pass.test_a's section (test-1):\n%s", html)
	}
}
