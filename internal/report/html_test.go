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
	evs = append(evs[:len(evs)-1], Event{Time: at(7.3), Kind: Capture, Test: "test_fail", File: outside}, evs[len(evs)-1])
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
		"<details><summary>vm <span class=\"dur\">25 lines</span></summary>",
		"boot line 25", "Welcome to NixOS!",
		`href="./test_pass/vlan1.pcap"`,
		`href="` + filepath.ToSlash(outside) + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "\x1b", "src=", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
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
