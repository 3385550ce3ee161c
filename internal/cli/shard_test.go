package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/shard"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// shardSuite writes three test files in a new working directory: six
// tests, machines with declared and default memory, one test that
// fails. It returns the files' names, relative.
func shardSuite(t *testing.T) []string {
	t.Helper()
	t.Chdir(t.TempDir())
	files := map[string]string{
		"a.star": "big = machine(memory = 1024, cpus = 2)\nsmall = machine()\n\ndef test_one():\n    pass\n\ndef test_two():\n    pass\n",
		"b.star": "vm = machine(image = \"debian:trixie\")\n\ndef test():\n    pass\n",
		"c.star": "def test_x():\n    pass\n\ndef test_y():\n    fail(\"on purpose\")\n\ndef test_z():\n    pass\n",
	}
	var names []string
	for name, src := range files {
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// TestListJSONShard: -list -json -shard 2/3 prints this shard's tests
// with the contract's keys, and the three shards' lists together are
// plain -list's, each test once.
func TestListJSONShard(t *testing.T) {
	files := shardSuite(t)
	timings := filepath.Join(t.TempDir(), "timings.json")
	now := time.Now()
	// a.test_one's duration is known, the others weigh its median.
	if err := shard.Record(timings, map[string]shard.Timing{"a.star:test_one": {ID: "a.test_one", Duration: 42, Seen: now}}, now); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(append([]string{"run", "-list", "-timings", timings}, files...)...)
	if code != exitOK {
		t.Fatalf("-list: exit %d, %s", code, stderr)
	}
	all := strings.Fields(stdout)
	if want := []string{"a.test_one", "a.test_two", "b.test", "c.test_x", "c.test_y", "c.test_z"}; !slices.Equal(all, want) {
		t.Fatalf("-list printed %q, want %q", all, want)
	}
	seen := map[string]int{}
	for _, s := range []string{"1/3", "2/3", "3/3"} {
		code, stdout, stderr := run(append([]string{"run", "-list", "-json", "-shard", s, "-timings", timings}, files...)...)
		if code != exitOK {
			t.Fatalf("-list -json -shard %s: exit %d, %s", s, code, stderr)
		}
		sc := bufio.NewScanner(strings.NewReader(stdout))
		for sc.Scan() {
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
				t.Fatalf("-shard %s: line %q: %v", s, sc.Text(), err)
			}
			var le listEntry
			json.Unmarshal(sc.Bytes(), &le)
			seen[le.ID]++
			for _, k := range []string{"id", "file", "test", "machines", "memory_mib", "shard"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("-shard %s: line %s lacks %q", s, sc.Text(), k)
				}
			}
			if le.Shard != s {
				t.Errorf("%s: shard %q, want %q", le.ID, le.Shard, s)
			}
			_, hasDuration := raw["duration_s"]
			if hasDuration != (le.ID == "a.test_one") || (hasDuration && le.Duration != 42) {
				t.Errorf("%s: duration_s %v (present %v); want 42 for a.test_one only, the one measured", le.ID, le.Duration, hasDuration)
			}
			if le.ID == "b.test" && (len(le.Machines) != 1 || le.Machines[0].Image != "debian:trixie") {
				t.Errorf("b.test's machines: got %+v, want vm of image debian:trixie", le.Machines)
			}
		}
	}
	for _, id := range all {
		if seen[id] != 1 {
			t.Errorf("%s is listed by %d shards, want 1", id, seen[id])
		}
	}

	// The others weigh the median of the known, 42 s too: equal weights
	// go round the shards in id order, a.test_one first.
	code, stdout, _ = run(append([]string{"run", "-list", "-json", "-shard", "1/3", "-timings", timings}, files...)...)
	var a listEntry
	if err := json.Unmarshal([]byte(strings.SplitN(stdout, "\n", 2)[0]), &a); code != exitOK || err != nil {
		t.Fatalf("-shard 1/3: exit %d, %v", code, err)
	}
	if a.ID != "a.test_one" || a.File != "a.star" || a.Test != "test_one" || a.MemoryMiB != 1024+512 ||
		!slices.Equal(a.Machines, []listMachine{{"big", 1024, 2, ""}, {"small", 512, 1, ""}}) {
		t.Errorf("-shard 1/3's first line: got %+v, want a.test_one of a.star, machines big (1024 MiB, 2 cpus) and small (the default 512, 1)", a)
	}
}

// TestShardFlagErrors: bad -shard values and -shard auto without its
// variables stop the run before anything boots, with exit 2 and what to
// do.
func TestShardFlagErrors(t *testing.T) {
	files := shardSuite(t)
	clearShardEnv(t)
	tests := []struct{ spec, stderr string }{
		{"3/2", `-shard "3/2": the index must be from 1 to 2`},
		{"0/0", `-shard "0/0": the shard count "0" is not a whole number of at least 1`},
		{"1/0", `-shard "1/0": the shard count "0"`},
		{"a/b", `-shard "a/b": the shard count "b"`},
		{"auto/0", `-shard "auto/0": the shard count "0"`},
		{"auto", "-shard auto: none of VMLAB_SHARD_INDEX, CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB, JOB_COMPLETION_INDEX is set"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			code, _, stderr := run(append([]string{"run", "-shard", tt.spec, "-timings", filepath.Join(t.TempDir(), "t.json")}, files...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tt.stderr)
			}
		})
	}
}

// clearShardEnv unsets the variables of -shard auto for the test, so a
// CI job running the tests does not change their outcome.
func clearShardEnv(t *testing.T) {
	for _, name := range []string{"VMLAB_SHARD_INDEX", "VMLAB_SHARD_TOTAL", "CI_NODE_INDEX", "CI_NODE_TOTAL",
		"BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", "JOB_COMPLETION_INDEX"} {
		t.Setenv(name, "")
	}
}

// TestShardAuto: -shard auto takes each engine's variables, and lists
// what -shard I/N with the same place lists.
func TestShardAuto(t *testing.T) {
	files := shardSuite(t)
	clearShardEnv(t)
	timings := filepath.Join(t.TempDir(), "t.json")
	list := func(spec string) string {
		t.Helper()
		code, stdout, stderr := run(append([]string{"run", "-list", "-shard", spec, "-timings", timings}, files...)...)
		if code != exitOK {
			t.Fatalf("-shard %s: exit %d, %s", spec, code, stderr)
		}
		return stdout
	}
	tests := []struct {
		name, spec string
		env        map[string]string
		want       string
	}{
		{"github matrix", "auto", map[string]string{"VMLAB_SHARD_INDEX": "1", "VMLAB_SHARD_TOTAL": "3"}, "2/3"},
		{"gitlab", "auto", map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"}, "1/2"},
		{"buildkite", "auto", map[string]string{"BUILDKITE_PARALLEL_JOB": "3", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, "4/4"},
		{"kubernetes", "auto/3", map[string]string{"JOB_COMPLETION_INDEX": "2"}, "3/3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got := list(tt.spec)
			for k := range tt.env {
				t.Setenv(k, "")
			}
			if want := list(tt.want); got != want || got == "" {
				t.Errorf("-shard %s lists %q, -shard %s %q", tt.spec, got, tt.want, want)
			}
		})
	}
}

// TestShardRecordsTimings: a shard's run writes the duration of each of
// its tests that passed or failed into the timings file, under the key
// of its file and name, and nothing for the other shards' tests; a run
// interrupted records nothing (a test's time then says nothing of the
// test). VM-free: the tests use no machine.
func TestShardRecordsTimings(t *testing.T) {
	files := shardSuite(t)
	loaded, err := loadAll(t.Context(), files, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := selectJobs(loaded, "c\\.")
	if err != nil {
		t.Fatal(err)
	}
	timings := filepath.Join(t.TempDir(), "timings.json")
	e := &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}}
	sf := shardFlags{spec: "1/2", timings: timings}
	plan, err := sf.plan(jobs)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, j := range plan.jobs {
		mine = append(mine, shard.Key(j.file.Name, j.test))
	}
	// c.test_x, c.test_y, c.test_z by count: x and z in 1/2, y (fails) in 2/2.
	if want := []string{"c.star:test_x", "c.star:test_z"}; !slices.Equal(mine, want) {
		t.Fatalf("shard 1/2 runs %q, want %q", mine, want)
	}
	rep := plan.record(t.Context(), e, report.New(), false)
	runJobs(t.Context(), plan.jobs, 1, time.Minute, nil, t.TempDir(), rep)
	rep.Close()
	got, err := shard.ReadTimings(timings)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, mine) {
		t.Errorf("timings file holds %q, want %q", keys, mine)
	}

	// Shard 2/2's test fails: its time is recorded too.
	sf.spec = "2/2"
	if plan, err = sf.plan(jobs); err != nil {
		t.Fatal(err)
	}
	rep = plan.record(t.Context(), e, report.New(), false)
	if res := runJobs(t.Context(), plan.jobs, 1, time.Minute, nil, t.TempDir(), rep); res.failed != 1 {
		t.Fatalf("shard 2/2: %d failed, want c.test_y", res.failed)
	}
	rep.Close()
	if got, _ = shard.ReadTimings(timings); got.Duration("c.star:test_y") <= 0 {
		t.Errorf("the failed test's duration is not recorded: %v", got)
	}

	// Interrupted as the first test starts: nothing new.
	other := filepath.Join(t.TempDir(), "timings.json")
	sf = shardFlags{spec: "1/1", timings: other}
	if plan, err = sf.plan(jobs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	rep = plan.record(ctx, e, report.New(cancelOnStart{cancel}), false)
	runJobs(ctx, plan.jobs, 1, time.Minute, nil, t.TempDir(), rep)
	rep.Close()
	if got, err := shard.ReadTimings(other); err != nil || len(got) != 0 {
		t.Errorf("an interrupted run recorded %v (%v), want nothing", got, err)
	}
}

// TestShardRunManifest runs `vmlab run` as a user would: -shard 1/1
// writes run.json (complete, exit 1 as a test fails, every test) and
// the timings; a shard with no test (4/4 of 3) runs nothing, says so,
// exits 0 and still writes its manifest. Boots no VM (the tests use no
// machine), but needs the static agent to prepare the boot.
func TestShardRunManifest(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	shardSuite(t)
	timings := filepath.Join(t.TempDir(), "timings.json")
	out := filepath.Join(t.TempDir(), "out")
	t.Setenv("VMLAB_RUN_ID", "run-7")
	code, _, stderr := run("run", "-shard", "1/1", "-timings", timings, "-out", out, "c.star")
	if code != exitFail {
		t.Fatalf("-shard 1/1: exit %d, want 1 (c.test_y fails): %s", code, stderr)
	}
	m, err := shard.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c.test_x", "c.test_y", "c.test_z"}
	if !m.Complete || m.Exit != exitFail || m.RunID != "run-7" || m.ShardName() != "1/1" || m.Host == "" ||
		!slices.Equal(m.All, want) || !slices.Equal(m.Tests, want) || m.Selection == "" || m.Ended.Before(m.Started) {
		t.Errorf("run.json: got %+v; want complete, exit 1, run-7, 1/1, a host, a selection, all and tests %q", m, want)
	}
	got, err := shard.ReadTimings(timings)
	if err != nil || len(got) != 3 {
		t.Errorf("timings after the run: %v, %v; want c.star's three tests", got, err)
	}

	empty := filepath.Join(t.TempDir(), "empty")
	code, _, stderr = run("run", "-shard", "4/4", "-timings", timings, "-out", empty, "c.star")
	if code != exitOK || !strings.Contains(stderr, "shard 4/4 has no test (3 tests between 4 shards): nothing to run") {
		t.Errorf("-shard 4/4 of 3 tests: exit %d, stderr %q; want 0 and why", code, stderr)
	}
	m, err = shard.ReadManifest(empty)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.Exit != 0 || len(m.Tests) != 0 || !slices.Equal(m.All, want) {
		t.Errorf("the empty shard's run.json: %+v; want complete, exit 0, no tests, all three", m)
	}
	if _, err := os.Stat(filepath.Join(empty, "junit.xml")); err != nil {
		t.Errorf("the empty shard wrote no junit.xml for the merge: %v", err)
	}
}

// TestTimingsWithoutHome: with no $HOME nor $XDG_CACHE_HOME to keep the
// default timings file in, an unsharded run goes on (by count), and a
// sharded one stops: its split needs the durations every shard reads.
func TestTimingsWithoutHome(t *testing.T) {
	files := shardSuite(t)
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	if code, stdout, stderr := run(append([]string{"run", "-list", "-json"}, files...)...); code != exitOK || strings.Count(stdout, "\n") != 6 {
		t.Errorf("unsharded: exit %d, %d lines, stderr %q; want 0 and 6 tests", code, strings.Count(stdout, "\n"), stderr)
	}
	code, _, stderr := run(append([]string{"run", "-list", "-shard", "1/2"}, files...)...)
	if code != exitUsage || !strings.Contains(stderr, "finding the cache directory for the timings file (or pass -timings FILE)") {
		t.Errorf("sharded: exit %d, stderr %q; want 2 and what to pass", code, stderr)
	}
}

// TestShardExamples: the examples, loaded as vmlab run loads them, split
// in N = 1..8 shards by -list -shard I/N: each test listed by exactly one
// shard, and all of them together plain -list's. coverage.star shares a
// directory its build.sh makes: it is left out when that is missing.
func TestShardExamples(t *testing.T) {
	clearShardEnv(t)
	paths, err := filepath.Glob("../../examples/*.star")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var files []string
	for _, p := range paths {
		_, err := loadAll(t.Context(), []string{p}, time.Minute)
		if err != nil && strings.Contains(err.Error(), "no such host directory") {
			t.Logf("left out: %v", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	timings := filepath.Join(t.TempDir(), "timings.json")
	list := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := run(append(append([]string{"run", "-list", "-timings", timings}, args...), files...)...)
		if code != exitOK {
			t.Fatalf("-list %v: exit %d, %s", args, code, stderr)
		}
		return strings.Fields(stdout)
	}
	all := list()
	if len(all) < len(files) {
		t.Fatalf("-list: %d tests in %d files", len(all), len(files))
	}
	for n := 1; n <= 8; n++ {
		count := map[string]int{}
		for i := 1; i <= n; i++ {
			for _, id := range list("-shard", fmt.Sprintf("%d/%d", i, n)) {
				count[id]++
			}
		}
		for _, id := range all {
			if count[id] != 1 {
				t.Errorf("%d shards: %s listed %d times, want once", n, id, count[id])
			}
		}
		if len(count) != len(all) {
			t.Errorf("%d shards: %d tests listed, -list has %d", n, len(count), len(all))
		}
	}
}
