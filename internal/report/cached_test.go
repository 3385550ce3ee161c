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
}
