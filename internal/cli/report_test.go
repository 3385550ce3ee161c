package cli

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/shard"
)

// fixtureShard is a shard's output directory as vmlab run leaves it:
// run.json, events.jsonl (unless noEvents) and each test's files.
type fixtureShard struct {
	m        shard.Manifest
	events   []report.Event
	files    map[string]string // path under the directory: content
	noEvents bool
}

var fixtureAll = []string{"a.test_one", "a.test_two", "b.test_three", "b.test_four"}

// newFixture is shard index/total of a run of fixtureAll, complete, its
// tests passed, their events naming their files under origOut (where the
// shard's vmlab wrote them, not where the merge finds them).
func newFixture(index, total int, tests ...string) *fixtureShard {
	f := &fixtureShard{
		m: shard.Manifest{Format: shard.ManifestVersion, Vmlab: "v1.2.3", RunID: "42-1", Host: "runner-" + string(rune('0'+index)),
			Index: index, Total: total, Selection: "sha256:abc", All: fixtureAll, Tests: tests,
			Started: time.Now().UTC().Truncate(time.Minute).Add(-time.Hour), Complete: true, Keys: map[string]string{}},
		files: make(map[string]string),
	}
	for _, id := range fixtureAll {
		file, test, _ := strings.Cut(id, ".")
		f.m.Keys[id] = shard.Key("suite/"+file+".star", test)
	}
	origOut := "/builds/runner/out"
	t0 := f.m.Started
	for i, id := range tests {
		start := t0.Add(time.Duration(i) * time.Minute)
		log := filepath.Join(origOut, id, "vm", "console.log")
		f.events = append(f.events,
			report.Event{Time: start, Kind: report.TestStart, Test: id},
			report.Event{Time: start.Add(time.Second), Kind: report.Command, Test: id, Machine: "vm", Command: "true", Outcome: report.Exited, Duration: time.Second},
			report.Event{Time: start.Add(2 * time.Second), Kind: report.ConsoleLog, Test: id, Machine: "vm", File: log},
			report.Event{Time: start.Add(2 * time.Second), Kind: report.TestEnd, Test: id, Passed: true, Duration: 2 * time.Second},
		)
		f.files[filepath.Join(id, "vm", "console.log")] = "console of " + id + "\n"
	}
	return f
}

// write writes the shard's directory under parent and returns it.
func (f *fixtureShard) write(t *testing.T, parent string) string {
	t.Helper()
	dir := filepath.Join(parent, "shard-"+f.m.ShardName()[:1])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Write(dir); err != nil {
		t.Fatal(err)
	}
	if !f.noEvents {
		var b strings.Builder
		for _, e := range f.events {
			data, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(append(data, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for p, content := range f.files {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mergedCase is a testcase of the merged junit.xml, as the tests read it.
type mergedCase struct {
	Classname  string `xml:"classname,attr"`
	Name       string `xml:"name,attr"`
	Properties []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"properties>property"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
}

func (c mergedCase) prop(name string) string {
	for _, p := range c.Properties {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// readMergedJUnit returns the testcases of dir/junit.xml in order, by
// "classname.name".
func readMergedJUnit(t *testing.T, dir string) ([]string, map[string]mergedCase) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Cases []mergedCase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit.xml: %v\n%s", err, data)
	}
	var order []string
	cases := make(map[string]mergedCase)
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			id := c.Classname + "." + c.Name
			order = append(order, id)
			cases[id] = c
		}
	}
	return order, cases
}

// TestReportMerge merges two complete shards: the tests in the
// selection's order (not the shards'), each with its shard and host, a
// cached test counted as passed, the tests' files copied into the merged
// directory with the events' paths to them and the HTML's links
// rewritten, the files private.
func TestReportMerge(t *testing.T) {
	parent := t.TempDir()
	s1 := newFixture(1, 2, "a.test_two", "b.test_three")
	s2 := newFixture(2, 2, "a.test_one", "b.test_four")
	end := &s2.events[len(s2.events)-1] // b.test_four's end
	end.Cached, end.Text = true, "passed at 09:00 on runner-9"
	dir1, dir2 := s1.write(t, parent), s2.write(t, parent)
	out := filepath.Join(parent, "merged")

	code, stdout, stderr := run("report", "merge", "-out", out, dir1, dir2)
	if code != exitOK {
		t.Fatalf("got exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"shard 1/2 on runner-1 (" + dir1 + "): 2 passed, 0 failed, 0 not run\n",
		"shard 2/2 on runner-2 (" + dir2 + "): 2 passed (1 cached), 0 failed, 0 not run\n",
		"merged: 4 passed (1 cached), 0 failed, 0 not run\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	order, cases := readMergedJUnit(t, out)
	if strings.Join(order, " ") != strings.Join(fixtureAll, " ") {
		t.Errorf("junit.xml has testcases %v, want the selection's order %v", order, fixtureAll)
	}
	for id, shardName := range map[string]string{"a.test_one": "2/2", "a.test_two": "1/2", "b.test_three": "1/2", "b.test_four": "2/2"} {
		c := cases[id]
		if c.prop("shard") != shardName || c.prop("host") != "runner-"+shardName[:1] || c.Failure != nil || c.Skipped != nil {
			t.Errorf("testcase %s: got %+v, want passed, shard %s on runner-%s", id, c, shardName, shardName[:1])
		}
	}

	events, err := os.ReadFile(filepath.Join(out, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := report.ReadEvents(strings.NewReader(string(events)))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(s1.events)+len(s2.events) {
		t.Errorf("merged events.jsonl has %d events, want %d", len(evs), len(s1.events)+len(s2.events))
	}
	for _, e := range evs {
		switch e.Kind {
		case report.TestStart, report.TestEnd:
			if e.Shard == "" || e.Host == "" {
				t.Errorf("merged %s of %s has no shard or host: %+v", e.Kind, e.Test, e)
			}
		case report.ConsoleLog:
			want := filepath.Join(out, e.Test, "vm", "console.log")
			if e.File != want {
				t.Errorf("merged console-log of %s: got file %s, want %s", e.Test, e.File, want)
			}
			if data, err := os.ReadFile(want); err != nil || string(data) != "console of "+e.Test+"\n" {
				t.Errorf("copied console log %s: got %q, %v", want, data, err)
			}
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`href="./a.test_one/vm/console.log"`, "shard 2/2 on runner-2", "shard 1/2 on runner-1"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	for _, p := range []string{out, filepath.Join(out, "junit.xml"), filepath.Join(out, "report.html"), filepath.Join(out, "events.jsonl"),
		filepath.Join(out, "a.test_one"), filepath.Join(out, "a.test_one", "vm", "console.log")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]os.FileMode{true: 0o700, false: 0o600}[fi.IsDir()]; fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}

	// The shards' durations, for the next run's -timings: every test
	// that ran, and the cached one (its duration is the run's that passed
	// before). Before, the cached one was left out, and the next split
	// weighed it the median. No lock file is left beside them.
	timings, err := shard.ReadTimings(filepath.Join(out, "timings.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range fixtureAll {
		file, test, _ := strings.Cut(id, ".")
		got, ok := timings[shard.Key("suite/"+file+".star", test)]
		if !ok || got.ID != id || got.Duration != 2 {
			t.Errorf("merged timings.json for %s: got %+v (present %v), want present with 2 s", id, got, ok)
		}
	}
	if _, err := os.Lstat(filepath.Join(out, "timings.json.lock")); err == nil {
		t.Errorf("the merge left timings.json.lock in -out")
	}

	// A second merge into the same directory is refused, unless -force.
	code, _, stderr = run("report", "merge", "-out", out, dir1, dir2)
	if code != exitUsage || !strings.Contains(stderr, "is not empty") {
		t.Errorf("merge into the previous merge: got exit %d, stderr %q; want 2 and why", code, stderr)
	}
	if code, stdout, stderr = run("report", "merge", "-force", "-out", out, dir1, dir2); code != exitOK {
		t.Errorf("merge -force into the previous merge: got exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestReportMergeFaults: a shard killed midway, a shard that left no
// events.jsonl and a missing shard show as failed or not run, named, and
// the merge exits 1.
func TestReportMergeFaults(t *testing.T) {
	t.Run("killed", func(t *testing.T) {
		parent := t.TempDir()
		s1 := newFixture(1, 2, "a.test_one", "a.test_two")
		s2 := newFixture(2, 2, "b.test_three", "b.test_four")
		s2.m.Complete = false
		s2.events = s2.events[:2] // b.test_three started, then the runner died
		out := filepath.Join(parent, "merged")
		code, stdout, stderr := run("report", "merge", "-out", out, s1.write(t, parent), s2.write(t, parent))
		if code != exitFail {
			t.Errorf("got exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "2 passed, 2 failed, 0 not run\n") || !strings.Contains(stdout, ": did not finish") {
			t.Errorf("summary does not count the killed shard's tests failed:\n%s", stdout)
		}
		_, cases := readMergedJUnit(t, out)
		for _, id := range []string{"b.test_three", "b.test_four"} {
			c := cases[id]
			if c.Failure == nil || c.Failure.Message != "shard 2/2 on runner-2 did not finish" || c.prop("shard") != "2/2" {
				t.Errorf("testcase %s of the killed shard: got %+v, want failed, saying the shard did not finish", id, c)
			}
		}
	})
	t.Run("no events", func(t *testing.T) {
		parent := t.TempDir()
		s1 := newFixture(1, 2, "a.test_one", "a.test_two")
		s2 := newFixture(2, 2, "b.test_three", "b.test_four")
		s2.noEvents = true
		out := filepath.Join(parent, "merged")
		dir2 := s2.write(t, parent)
		code, stdout, stderr := run("report", "merge", "-out", out, s1.write(t, parent), dir2)
		if code != exitFail {
			t.Errorf("got exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		_, cases := readMergedJUnit(t, out)
		if c := cases["b.test_four"]; c.Failure == nil || c.Failure.Message != "shard 2/2 on runner-2 left no events.jsonl in "+dir2 {
			t.Errorf("testcase of the shard without events: got %+v, want failed, saying why", c)
		}
	})
	t.Run("in no shard", func(t *testing.T) {
		parent := t.TempDir()
		s1 := newFixture(1, 2, "a.test_one", "a.test_two")
		s2 := newFixture(2, 2, "b.test_four", "b.test_three")
		s2.m.Tests = s2.m.Tests[:1]              // b.test_three in no shard's tests
		s2.events = s2.events[:4]                // b.test_four's
		s1.events = s1.events[:len(s1.events)-1] // a complete shard, a.test_two without its end
		out := filepath.Join(parent, "merged")
		code, stdout, stderr := run("report", "merge", "-out", out, s1.write(t, parent), s2.write(t, parent))
		if code != exitFail || !strings.Contains(stdout, "merged: 2 passed, 1 failed, 1 not run\n") {
			t.Errorf("got exit %d, want 1, a test failed and one not run\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		_, cases := readMergedJUnit(t, out)
		if c := cases["b.test_three"]; c.Skipped == nil || c.Skipped.Message != "in no shard's tests: no shard ran it" {
			t.Errorf("testcase of no shard: got %+v, want skipped, saying no shard ran it", c)
		}
		if c := cases["a.test_two"]; c.Failure == nil || c.Failure.Message != "shard 1/2 on runner-1 ended without a result for this test" {
			t.Errorf("testcase without an end in a complete shard: got %+v, want failed, saying so", c)
		}
	})
	t.Run("missing shard", func(t *testing.T) {
		parent := t.TempDir()
		s1 := newFixture(1, 3, "a.test_one", "b.test_four")
		s2 := newFixture(2, 3, "a.test_two")
		out := filepath.Join(parent, "merged")
		code, stdout, stderr := run("report", "merge", "-out", out, s1.write(t, parent), s2.write(t, parent))
		if code != exitFail {
			t.Errorf("got exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "shard 3/3: missing\n") || !strings.Contains(stdout, "merged: 3 passed, 0 failed, 1 not run\n") {
			t.Errorf("summary does not name the missing shard and its test:\n%s", stdout)
		}
		order, cases := readMergedJUnit(t, out)
		if strings.Join(order, " ") != strings.Join(fixtureAll, " ") {
			t.Errorf("junit.xml has testcases %v, want %v", order, fixtureAll)
		}
		if c := cases["b.test_three"]; c.Skipped == nil || c.Skipped.Message != "shard 3/3 missing" || c.prop("shard") != "3/3" {
			t.Errorf("testcase of the missing shard: got %+v, want skipped, saying shard 3/3 is missing", c)
		}
		// report.html says why the test did not run, and not that it ran
		// in the shard that is missing.
		page, err := os.ReadFile(filepath.Join(out, "report.html"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(page), "not run: shard 3/3 missing"); n != 2 {
			t.Errorf("report.html says %d times \"not run: shard 3/3 missing\", want 2 (index and section):\n%s", n, page)
		}
		if strings.Contains(string(page), "ran in shard 3/3") {
			t.Errorf("report.html says the missing shard's test ran in it:\n%s", page)
		}
	})
}

// TestReportMergeBadInput: shards that are not of one run, directories
// that are not shards, two directories of one shard and an output
// directory among the inputs are refused with exit 2, naming them.
func TestReportMergeBadInput(t *testing.T) {
	pair := func(change func(s1, s2 *fixtureShard)) (string, string) {
		parent := t.TempDir()
		s1 := newFixture(1, 2, "a.test_one", "a.test_two")
		s2 := newFixture(2, 2, "b.test_three", "b.test_four")
		change(s1, s2)
		d1 := s1.write(t, parent)
		if s2.m.Index == s1.m.Index {
			return d1, s2.write(t, t.TempDir())
		}
		return d1, s2.write(t, parent)
	}
	tests := []struct {
		name   string
		change func(s1, s2 *fixtureShard)
		want   string
	}{
		{"selection", func(_, s2 *fixtureShard) { s2.m.Selection = "sha256:def" }, `selection "sha256:abc" and "sha256:def"`},
		{"run id", func(_, s2 *fixtureShard) { s2.m.RunID = "43-1" }, `run id "42-1" and "43-1"`},
		{"version", func(_, s2 *fixtureShard) { s2.m.Vmlab = "v1.2.4" }, `vmlab version "v1.2.3" and "v1.2.4"`},
		{"total", func(_, s2 *fixtureShard) { s2.m.Total = 3 }, `shard count "2" and "3"`},
		{"same shard", func(_, s2 *fixtureShard) { s2.m.Index = 1 }, "are both shard 1/2"},
		{"test twice", func(_, s2 *fixtureShard) { s2.m.Tests = append(s2.m.Tests, "a.test_two") }, "test a.test_two is in shard 1/2"},
		{"index", func(_, s2 *fixtureShard) { s2.m.Index = 3 }, "shard index 3 in its run.json is not within 1..2"},
		{"bad id", func(s1, s2 *fixtureShard) {
			all := append([]string{"../escape"}, fixtureAll...)
			s1.m.All, s2.m.All = all, all
		}, `test id "../escape" in its run.json is not a file.test_x name`},
		{"foreign test", func(_, s2 *fixtureShard) { s2.m.Tests = append(s2.m.Tests, "c.test_x") }, "test c.test_x of shard 2/2 is not in the run's selection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d1, d2 := pair(tt.change)
			out := filepath.Join(t.TempDir(), "merged")
			code, stdout, stderr := run("report", "merge", "-out", out, d1, d2)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("got exit %d, stderr %q; want 2 and %q\nstdout: %s", code, stderr, tt.want, stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused merge made its -out directory")
			}
		})
	}
	t.Run("no run.json", func(t *testing.T) {
		d1, _ := pair(func(_, _ *fixtureShard) {})
		empty := t.TempDir()
		code, _, stderr := run("report", "merge", "-out", filepath.Join(t.TempDir(), "m"), d1, empty)
		if code != exitUsage || !strings.Contains(stderr, empty+": no run.json") {
			t.Errorf("got exit %d, stderr %q; want 2, naming the directory without run.json", code, stderr)
		}
	})
	t.Run("out is an input", func(t *testing.T) {
		d1, d2 := pair(func(_, _ *fixtureShard) {})
		for _, out := range []string{d2, filepath.Join(d2, "merged")} {
			code, _, stderr := run("report", "merge", "-force", "-out", out, d1, d2)
			if code != exitUsage || !strings.Contains(stderr, "is the shard directory "+d2+" or inside it") {
				t.Errorf("-out %s: got exit %d, stderr %q; want 2 and why", out, code, stderr)
			}
		}
	})
	checkCommands(t, []commandCase{
		{[]string{"help", "report"}, exitOK, "usage: vmlab report merge -out DIR SHARD_DIR...", ""},
		{[]string{"help", "report", "merge"}, exitOK, "-force", ""},
		{[]string{"report", "merge", "somedir"}, exitUsage, "", "usage: vmlab report merge"},
		{[]string{"report", "frob"}, exitUsage, "", `unknown subcommand "frob"`},
	})
}

// TestReportMergeSaysWhatIsAmiss: shards without a run id merge, with a
// warning that says how to set one; -out without directories and
// directories without -out say what is missing beside the usage. Before,
// the first merged silently and the others printed the usage only.
func TestReportMergeSaysWhatIsAmiss(t *testing.T) {
	parent := t.TempDir()
	s1 := newFixture(1, 2, "a.test_one", "a.test_two")
	s2 := newFixture(2, 2, "b.test_three", "b.test_four")
	s1.m.RunID, s2.m.RunID = "", ""
	d1, d2 := s1.write(t, parent), s2.write(t, parent)
	code, stdout, stderr := run("report", "merge", "-out", filepath.Join(parent, "merged"), d1, d2)
	if code != exitOK || !strings.Contains(stderr, "run id is empty") || !strings.Contains(stderr, "VMLAB_RUN_ID") {
		t.Errorf("shards without a run id: got exit %d, want 0 and a warning naming VMLAB_RUN_ID\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	withID := t.TempDir()
	s1.m.RunID, s2.m.RunID = "42-1", "42-1"
	code, _, stderr = run("report", "merge", "-out", filepath.Join(withID, "merged"), s1.write(t, withID), s2.write(t, withID))
	if code != exitOK || strings.Contains(stderr, "warning") {
		t.Errorf("shards with a run id: got exit %d and %q, want 0 and no warning", code, stderr)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "merge", "-out", filepath.Join(parent, "m3")}, "vmlab: report merge: no shard directory"},
		{[]string{"report", "merge", d1}, "vmlab: report merge: no -out"},
	} {
		code, _, stderr := run(tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "usage") {
			t.Errorf("%q: got exit %d, want 2, %q and the usage\nstderr: %s", tt.args, code, tt.want, stderr)
		}
	}
}
