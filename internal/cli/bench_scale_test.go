package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchScaleKeys: the figures are in `vmlab bench --json` under their
// stable names, and absent when not measured.
func TestBenchScaleKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{scaleBench: scaleBench{ScaleTests: 6, ShardSingleS: 40, ShardShardedS: 21,
		ShardSpeedup: 1.9, ShardMergeS: 0.05, CachedRunS: 0.4, CachedTests: 6}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"scale_tests":6`, `"shard_single_s":40`, `"shard_sharded_s":21`, `"shard_speedup":1.9`,
		`"shard_merge_s":0.05`, `"cached_run_s":0.4`, `"cached_tests":6`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got %s; want %s in it", b, want)
		}
	}
	if b, _ := json.Marshal(&benchResult{}); strings.Contains(string(b), "shard") || strings.Contains(string(b), "cached") {
		t.Errorf("got %s; want no shard or cached keys when they were not measured", b)
	}
}

// TestBenchScalePrint: the rows name the set, say both wall times, their
// ratio, each shard's share, the merge, and the cached run against its
// target (1 s, every test cached); unmeasured, they are absent.
func TestBenchScalePrint(t *testing.T) {
	files := []string{"examples/minimal.star", "examples/health.star"}
	measured := scaleBench{ScaleTests: 2, ShardSingleS: 20, ShardShardedS: 10.5, ShardSpeedup: 20 / 10.5, ShardMergeS: 0.04,
		CachedRunS: 0.35, CachedTests: 2, files: files, shards: [2]shardFigure{{1, 10.5}, {1, 9.75}}}
	slow := measured
	slow.CachedRunS = 1.5
	partly := measured
	partly.CachedTests, partly.cachedNote = 1, "1 ran again: the result cache did not serve them"
	shardsOnly := measured
	shardsOnly.CachedRunS = 0
	for _, tt := range []struct {
		name string
		s    scaleBench
		want []string
	}{
		{"measured", measured, []string{
			"shards of minimal, health 2 tests",
			"shards: 1 process / 2 at once (-j 1, split by a first run's durations) 20.00 / 10.50 s (1.90x) ~2x on 2 cores",
			"shard 1/2, 2/2 (-cache=off): 1 + 1 tests 10.50 / 9.75 s",
			"shards: vmlab report merge of the 2 0.04 s",
			"cached: the same tests again, 2 of 2 cached 0.35 s <= 1 s met"}},
		{"slow cached run", slow, []string{"2 of 2 cached 1.50 s <= 1 s MISSED"}},
		{"not all cached", partly, []string{"1 of 2 cached (1 ran again: the result cache did not serve them) 0.35 s <= 1 s MISSED"}},
		{"shards only", shardsOnly, []string{"shards: vmlab report merge of the 2 0.04 s"}},
		{"unmeasured", scaleBench{}, nil},
	} {
		checkRows(t, tt.name, tt.s.print, tt.want)
	}
	var b bytes.Buffer
	shardsOnly.print(&b)
	if strings.Contains(b.String(), "cached:") {
		t.Errorf("got %q; want no cached row when the cached run was not measured", b.String())
	}
}

// TestScaleFiles: -shard-files is split at commas, blanks dropped; ""
// is no file (the section skipped).
func TestScaleFiles(t *testing.T) {
	for _, tt := range []struct {
		flag string
		want []string
	}{
		{"", nil},
		{"a.star", []string{"a.star"}},
		{" a.star, b.star ,,", []string{"a.star", "b.star"}},
	} {
		if got := scaleFiles(tt.flag); !slices.Equal(got, tt.want) {
			t.Errorf("scaleFiles(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
}

// TestBenchScaleDefaultFiles: the default set is there, one test per
// file, as docs/cli.md says.
func TestBenchScaleDefaultFiles(t *testing.T) {
	for _, f := range benchScaleFiles {
		if _, err := os.Stat(filepath.Join("../..", f)); err != nil {
			t.Errorf("default -shard-files: %v", err)
		}
	}
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if set := scaleSet(benchScaleFiles); !strings.Contains(string(doc), set) {
		t.Errorf("docs/cli.md does not name the default set %q", set)
	}
}

// TestBenchScaleMissing: a missing file is skipped with a note, not a
// failure (bench runs from any directory).
func TestBenchScaleMissing(t *testing.T) {
	var s scaleBench
	var stderr bytes.Buffer
	if err := s.benchScale(t.Context(), &env{stdout: &stderr, stderr: &stderr}, []string{"no/such/minimal.star"}); err != nil {
		t.Fatalf("got %v, want the missing file skipped", err)
	}
	if s.ShardSingleS != 0 || !strings.Contains(stderr.String(), "no shard figures") {
		t.Errorf("got shard_single_s %v and %q; want 0 and a note", s.ShardSingleS, stderr.String())
	}
}

// TestCountTests: a run's tests and its cached ones, from events.jsonl.
func TestCountTests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	lines := `{"kind":"test-start","test":"a.test"}
{"kind":"test-end","test":"a.test","passed":true,"cached":true}
{"kind":"log","test":"b.test","text":"x"}
{"kind":"test-end","test":"b.test","passed":true}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	tests, cached, err := countTests(path)
	if err != nil || tests != 2 || cached != 1 {
		t.Errorf("got %d tests, %d cached, %v; want 2, 1, nil", tests, cached, err)
	}
	if _, _, err := countTests(filepath.Join(t.TempDir(), "none.jsonl")); err == nil {
		t.Error("got no error for a missing events file")
	}
}

// TestBenchScaleVM runs the section on two one-machine examples: four
// runs and a merge, by the static vmlab the tests build.
func TestBenchScaleVM(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	var s scaleBench
	var stderr bytes.Buffer
	files := []string{"../../examples/minimal.star", "../../examples/health.star"}
	if err := s.benchScale(t.Context(), &env{stdout: &stderr, stderr: &stderr}, files); err != nil {
		t.Fatalf("bench shards: %v\n%s", err, stderr.String())
	}
	if s.ScaleTests != 2 || s.shards[0].tests+s.shards[1].tests != 2 || s.shards[0].tests == 0 {
		t.Errorf("got %d tests, shards of %d and %d; want 2, one each", s.ScaleTests, s.shards[0].tests, s.shards[1].tests)
	}
	if s.CachedTests != 2 || s.cachedNote != "" {
		t.Errorf("got %d of 2 tests cached (%s), want both", s.CachedTests, s.cachedNote)
	}
	if s.ShardSpeedup != s.ShardSingleS/s.ShardShardedS || s.ShardMergeS <= 0 || s.CachedRunS <= 0 {
		t.Errorf("got %+v; want every figure measured", s)
	}
	var b bytes.Buffer
	s.print(&b)
	t.Logf("\n%s", b.String())
}

// TestWaitCommandsEach: each command's wall time ends when it does: the
// one waited for second, which ends first, has its figure while the other
// still runs.
func TestWaitCommandsEach(t *testing.T) {
	pipe := func() (*os.File, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}
	endEarly, releaseEarly := pipe() // each cat ends at its stdin's EOF
	endLate, releaseLate := pipe()
	defer releaseLate.Close()
	late := &scaleCommand{cmd: exec.Command("cat"), args: []string{"late"}}
	late.cmd.Stdin = endLate
	early := &scaleCommand{cmd: exec.Command("cat"), args: []string{"early"}}
	early.cmd.Stdin = endEarly
	cmds := []*scaleCommand{late, early}
	if err := startCommands(cmds); err != nil {
		t.Fatal(err)
	}
	endEarly.Close()
	endLate.Close()
	done := make(chan error, 1)
	go func() { done <- waitCommands(cmds) }()
	releaseEarly.Close()
	select {
	case <-early.ended:
	case <-time.After(30 * time.Second):
		t.Error("early ended, but its wait had not returned 30 s later, while late still ran")
	}
	releaseLate.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if early.took >= late.took {
		t.Errorf("got early %v, late %v; want early's wall time shorter", early.took, late.took)
	}
}
