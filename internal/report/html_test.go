package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTML(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	evs := sampleRun(dir)
	// One capture outside the report's directory.
	outside := filepath.Join(t.TempDir(), "elsewhere.pcap")
	evs = append(evs[:len(evs)-1],
		Event{Time: at(7.3), Kind: Capture, Test: "test_fail", File: outside},
		// A machine that booted but printed nothing, and the console logs.
		Event{Time: at(7.3), Kind: BootStart, Test: "test_fail", Machine: "quiet"},
		// Console logs come in declaration order, which the consoles follow.
		Event{Time: at(7.3), Kind: ConsoleLog, Test: "test_fail", Machine: "quiet", File: filepath.Join(dir, "test_fail", "quiet", "console.log")},
		Event{Time: at(7.3), Kind: ConsoleLog, Test: "test_fail", Machine: "vm", File: filepath.Join(dir, "test_fail", "vm", "console.log")},
		evs[len(evs)-1])
	if err := emitAll(NewHTML(path), evs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)

	for _, want := range []string{
		"1 passed, 1 failed",
		`<span class="pass">PASS</span> test_pass`,
		`<span class="fail">FAIL</span> test_fail`,
		"3.21s", "3.40s",
		"a step", "hostname",
		"vm$ echo about to fail; echo oops &gt;&amp;2; exit 5", "exit 5",
		"<details><summary>stdout</summary>", "<details open><summary>stderr</summary><pre>oops</pre>",
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"fail.star:4:48: in lambda",
		"vm: about to run", "done", "vm: booted in 2.50s",
		`<details><summary>vm <span class="dur">1 line</span></summary>`,
		`<details><summary>vm <span class="dur">25 lines</span> <a href="./test_fail/vm/console.log">test_fail/vm/console.log</a></summary>`,
		`<p>quiet <span class="dur">printed nothing on its console</span> <a href="./test_fail/quiet/console.log">`,
		"<details open><summary>last 20 console lines of vm</summary><pre>boot line 6\n",
		"boot line 25", "Welcome to NixOS!",
		`href="./test_pass/vlan1.pcap"`,
		`href="` + filepath.ToSlash(outside) + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if q, v := strings.Index(page, "<p>quiet "), strings.Index(page, `<summary>vm <span class="dur">25 lines`); q < 0 || v < 0 || q > v {
		t.Errorf("consoles not in declaration order: quiet at %d, vm at %d", q, v)
	}
	// The subtest failed with the test's error: its failure is shown once,
	// at the top, without the output the error repeats.
	if n := strings.Count(page, `<div class="failure">`); n != 1 {
		t.Errorf("report.html shows %d failure boxes, want 1", n)
	}
	for _, bad := range []string{"--- stdout ---", "<script", "http://", "https://", "\x1b", "src=", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
}

func TestHTMLCoverageLink(t *testing.T) {
	dir := t.TempDir()
	index := filepath.Join(dir, "coverage", "index.html")
	// An earlier run's page is there in both cases: only this run's
	// merge decides.
	if err := os.MkdirAll(filepath.Dir(index), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		merged bool
		want   bool
	}{{"merged", true, true}, {"merge failed", false, false}} {
		t.Run(tt.name, func(t *testing.T) {
			linked := func() string {
				if tt.merged {
					return index
				}
				return ""
			}
			path := filepath.Join(dir, "report.html")
			if err := emitAll(NewFiles(HTMLFileWithCoverage(path, linked)), sampleRun(dir)); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			link := `<a href="./coverage/index.html">coverage/index.html</a>`
			if got := strings.Contains(string(data), link); got != tt.want {
				t.Errorf("report.html links the coverage report: %v, want %v", got, tt.want)
			}
		})
	}
}

// The coverage directory beside the output directory (vmlab run -out out
// -coverage cov) is linked relative to report.html too, so that the link
// still works once both are archived or moved together.
func TestHTMLCoverageLinkOutside(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ index, want string }{
		{filepath.Join(dir, "cov", "index.html"), `<a href="../cov/index.html">../cov/index.html</a>`},
		{filepath.Join(dir, "a", "b", "index.html"), `<a href="../a/b/index.html">../a/b/index.html</a>`},
		{filepath.Join(dir, "out", "cov", "index.html"), `<a href="./cov/index.html">cov/index.html</a>`},
	} {
		out := filepath.Join(dir, "out")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(out, "report.html")
		index := func() string { return tt.index }
		if err := emitAll(NewFiles(HTMLFileWithCoverage(path, index)), sampleRun(out)); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), tt.want) {
			t.Errorf("report.html does not link %s as %s; its coverage link: %s", tt.index, tt.want, coverageLinkLine(string(data)))
		}
		if strings.Contains(string(data), dir) {
			t.Errorf("report.html holds the host path %s", dir)
		}
	}
}

// coverageLinkLine is the line of page that links index.html.
func coverageLinkLine(page string) string {
	for l := range strings.Lines(page) {
		if strings.Contains(l, "index.html") {
			return strings.TrimSpace(l)
		}
	}
	return "(none)"
}

func TestHTMLClose(t *testing.T) {
	sink := NewHTML(filepath.Join(t.TempDir(), "missing", "report.html"))
	err := emitAll(sink, sampleRun("/out"))
	if err == nil || !strings.HasPrefix(err.Error(), "write html report: ") {
		t.Errorf("got %v, want a write error", err)
	}
	if again := sink.Close(); again != err {
		t.Errorf("second Close: got %v, want %v", again, err)
	}
}
