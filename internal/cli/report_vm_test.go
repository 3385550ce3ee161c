package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/shard"
	"github.com/vmlab/vmlab/internal/version"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestReportMergeRuns runs two files' tests as two shards (two vmlab run
// calls, each with its own -out), merges them and compares the merged
// junit.xml with a single run's of both files: equal but for times and
// the shards' properties. The shards' run.json are written here, as
// `vmlab run -shard` writes them.
func TestReportMergeRuns(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	files := []string{"testdata/pass.star", "testdata/fail.star"}
	all := []string{"pass.test_hostname", "fail.test_fails"}
	tmp := t.TempDir()

	single := filepath.Join(tmp, "single")
	if code, stdout, stderr := run(append([]string{"run", "-j", "1", "-out", single}, files...)...); code != exitFail {
		t.Fatalf("single run: got exit %d, want 1 (one test fails)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var dirs []string
	for i, pattern := range []string{`^pass\.`, `^fail\.`} {
		dir := filepath.Join(tmp, "shard"+string(rune('1'+i)))
		started := time.Now()
		code, stdout, stderr := run(append([]string{"run", "-out", dir, "-run", pattern}, files...)...)
		if want := []int{exitOK, exitFail}[i]; code != want {
			t.Fatalf("shard %d: got exit %d, want %d\nstdout: %s\nstderr: %s", i+1, code, want, stdout, stderr)
		}
		m := shard.Manifest{Format: shard.ManifestVersion, Vmlab: version.Short(), Host: "host" + string(rune('1'+i)),
			Index: i + 1, Total: 2, Selection: "sha256:test", All: all, Tests: all[i : i+1],
			Started: started, Ended: time.Now(), Complete: true, Exit: code}
		if err := m.Write(dir); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	merged := filepath.Join(tmp, "merged")
	code, stdout, stderr := run(append([]string{"report", "merge", "-out", merged}, dirs...)...)
	if code != exitFail {
		t.Fatalf("merge: got exit %d, want 1 (one test failed)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	want, got := timeless(t, single), timeless(t, merged)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged junit.xml differs from a single run's but for times:\ngot  %+v\nwant %+v", got, want)
	}
	_, cases := readMergedJUnit(t, merged)
	if c := cases["fail.test_fails"]; c.prop("shard") != "2/2" || c.prop("host") != "host2" {
		t.Errorf("merged fail.test_fails: got properties %+v, want shard 2/2 on host2", c.Properties)
	}
	if _, err := os.Stat(filepath.Join(merged, "pass.test_hostname", "vm", "console.log")); err != nil {
		t.Errorf("the merged report's console log: %v", err)
	}
}

// timeless is dir/junit.xml without its times: suites, their counts and
// testcases with their failures and skips; the testcases' output (times
// since the test's start, console lines with the kernel's) is left out.
func timeless(t *testing.T, dir string) any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure"`
		Skipped   *struct {
			Message string `xml:"message,attr"`
		} `xml:"skipped"`
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name     string     `xml:"name,attr"`
			Tests    int        `xml:"tests,attr"`
			Failures int        `xml:"failures,attr"`
			Errors   int        `xml:"errors,attr"`
			Skipped  int        `xml:"skipped,attr"`
			Cases    []testcase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s/junit.xml: %v", dir, err)
	}
	durations := regexp.MustCompile(`\d+(\.\d+)?(ns|µs|ms|s|m)\b`)
	for i := range doc.Suites {
		for _, c := range doc.Suites[i].Cases {
			if c.Failure != nil {
				c.Failure.Text = durations.ReplaceAllString(c.Failure.Text, "T")
			}
		}
	}
	return doc
}
