package cli

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"github.com/vmlab/vmlab/internal/shard"
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
	// Two shards, each with its own copy of the (empty) timings, as two
	// CI runners restore the same file: the split is by count.
	var dirs []string
	shardOf := map[string]string{}
	for i := range 2 {
		dir := filepath.Join(tmp, "shard"+string(rune('1'+i)))
		timings := filepath.Join(tmp, "timings"+string(rune('1'+i))+".json")
		code, stdout, stderr := run(append([]string{"run", "-out", dir, "-timings", timings, "-shard", string(rune('1'+i)) + "/2"}, files...)...)
		if code != exitOK && code != exitFail {
			t.Fatalf("shard %d: got exit %d\nstdout: %s\nstderr: %s", i+1, code, stdout, stderr)
		}
		m, err := shard.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m.All, all) || len(m.Tests) != 1 || !m.Complete {
			t.Fatalf("shard %d's run.json: all %q, tests %q, complete %v; want all %q, one test, complete", i+1, m.All, m.Tests, m.Complete, all)
		}
		shardOf[m.Tests[0]] = m.ShardName()
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
	host, _ := os.Hostname()
	for _, id := range all {
		if c := cases[id]; c.prop("shard") != shardOf[id] || c.prop("host") != host {
			t.Errorf("merged %s: got properties %+v, want shard %s on %s", id, c.Properties, shardOf[id], host)
		}
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
