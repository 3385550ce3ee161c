package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/shard"
)

// scaleBench is the scale-out section of `vmlab bench`
// (docs/scale-out.md): a set of examples run as one `vmlab run -j 1`
// against two `-shard I/2` processes at once, the merge of the two, and a
// second, fully cached run of the set.
type scaleBench struct {
	// ScaleTests is how many tests the set has.
	ScaleTests int `json:"scale_tests,omitempty"`
	// ShardSingleS is the set as one `vmlab run -j 1` process, wall time;
	// ShardShardedS the set as two `vmlab run -j 1 -shard I/2` processes
	// started at once, until the later one ends; ShardSpeedup their
	// ratio, single / sharded (2 at best on 2 free cores).
	ShardSingleS  float64 `json:"shard_single_s,omitempty"`
	ShardShardedS float64 `json:"shard_sharded_s,omitempty"`
	ShardSpeedup  float64 `json:"shard_speedup,omitempty"`
	// ShardMergeS is `vmlab report merge` of the two shards' outputs.
	ShardMergeS float64 `json:"shard_merge_s,omitempty"`
	// CachedRunS is a second `vmlab run` of the set whose results the
	// single run recorded, wall time; CachedTests how many of its tests
	// it reported cached (absent: none).
	CachedRunS  float64 `json:"cached_run_s,omitempty"`
	CachedTests int     `json:"cached_tests,omitempty"`

	// What the figures are made of, for the table.
	files      []string
	shards     [2]shardFigure
	cachedNote string // why not every test was cached ("" when all were)
}

// shardFigure is one shard's process: its tests, its wall time.
type shardFigure struct {
	tests int
	s     float64
}

// benchScaleFiles is the set the section runs by default: the examples
// that need nothing beyond what scripts/deps installs and that take
// seconds under TCG each (nfs.star and redis.star boot systemd, ~60 s;
// image.star and mixed.star build images; coverage.star wants its
// programs built; x_terminal.star starts Xorg). Six tests, twelve
// machines.
var benchScaleFiles = []string{
	"examples/minimal.star",
	"examples/health.star",
	"examples/client_server.star",
	"examples/console.star",
	"examples/nat.star",
	"examples/partition.star",
}

// cachedRunTarget is the target for CachedRunS.
const cachedRunTarget = 1.0

// benchScale measures the section on files (none skips it; a missing
// file skips it with a note). Every run is a real vmlab process (this
// program, or $VMLAB_AGENT under go test), in a temporary directory that
// holds the outputs, the timings and a result cache of their own,
// removed after:
//
//  1. the single run, with a fresh timings file and -cache=on into an
//     empty result cache: it runs every test (nothing is cached yet),
//     records their durations and their passes;
//  2. the two shards at once, -cache=off, each with a copy of the
//     timings the single run wrote, so both split by measured durations;
//  3. the merge of the shards' outputs;
//  4. the single run again, -cache=on: every test should be cached.
func (s *scaleBench) benchScale(ctx context.Context, e *env, files []string) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			fmt.Fprintf(e.stderr, "vmlab: bench: no shard figures: %v\n", err)
			return nil
		}
	}
	exe, err := driverBinary()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vmlab-bench-scale-")
	if err != nil {
		return fmt.Errorf("create the shards' directory: %w", err)
	}
	defer os.RemoveAll(dir)
	b := &scaleRunner{exe: exe, dir: dir, files: files,
		env: append(os.Environ(), resultCacheEnv+"="+filepath.Join(dir, "results"))}
	s.files = files
	return s.measure(ctx, e, b)
}

// measure runs the four steps of benchScale with b.
func (s *scaleBench) measure(ctx context.Context, e *env, b *scaleRunner) error {
	timings := filepath.Join(b.dir, "timings.json")
	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run -j 1 of %d files, one process\n", len(b.files))
	single, err := b.run(ctx, "single", "-cache=on", "-timings", timings)
	if err != nil {
		return err
	}
	if single.cached != 0 {
		return fmt.Errorf("the single run of the shard figures reported %d tests cached from an empty result cache", single.cached)
	}
	if _, err := os.Stat(timings); err != nil {
		return fmt.Errorf("the single run wrote no timings: %w", err)
	}
	s.ScaleTests, s.ShardSingleS = single.tests, single.s

	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run -j 1 -shard 1/2 and 2/2 at once\n")
	if err := s.runShards(ctx, b, timings); err != nil {
		return err
	}
	s.ShardSpeedup = s.ShardSingleS / s.ShardShardedS

	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab report merge of the two shards\n")
	start := time.Now()
	if err := b.command(ctx, "report", "merge", "-out", filepath.Join(b.dir, "merged"),
		filepath.Join(b.dir, "shard1"), filepath.Join(b.dir, "shard2")).Run(); err != nil {
		return err
	}
	s.ShardMergeS = time.Since(start).Seconds()

	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run of the same files again, cached\n")
	again, err := b.run(ctx, "cached", "-cache=on", "-timings", timings)
	if err != nil {
		return err
	}
	s.CachedRunS, s.CachedTests = again.s, again.cached
	if again.cached < again.tests {
		s.cachedNote = fmt.Sprintf("%d ran again: the result cache did not serve them", again.tests-again.cached)
	}
	return nil
}

// runShards runs shards 1/2 and 2/2 at once, -cache=off, each with its
// own copy of timings (the same durations, and no shard rewrites what
// the other reads).
func (s *scaleBench) runShards(ctx context.Context, b *scaleRunner, timings string) error {
	data, err := os.ReadFile(timings)
	if err != nil {
		return fmt.Errorf("read the single run's timings: %w", err)
	}
	cmds := make([]*scaleCommand, 2)
	for i := range cmds {
		copied := filepath.Join(b.dir, fmt.Sprintf("timings%d.json", i+1))
		if err := os.WriteFile(copied, data, 0o600); err != nil {
			return fmt.Errorf("copy the timings for shard %d/2: %w", i+1, err)
		}
		cmds[i] = b.runCommand(ctx, fmt.Sprintf("shard%d", i+1), "-cache=off", "-timings", copied, "-shard", fmt.Sprintf("%d/2", i+1))
	}
	start := time.Now()
	if err := startCommands(cmds); err != nil {
		return err
	}
	err = waitCommands(cmds)
	s.ShardShardedS = time.Since(start).Seconds()
	if err != nil {
		return err
	}
	for i, c := range cmds {
		s.shards[i].s = c.took.Seconds()
	}
	for i := range cmds {
		m, err := shard.ReadManifest(filepath.Join(b.dir, fmt.Sprintf("shard%d", i+1)))
		if err != nil {
			return err
		}
		s.shards[i].tests = len(m.Tests)
	}
	return nil
}

// scaleRunner runs vmlab processes for the section: exe with env, their
// outputs under dir.
type scaleRunner struct {
	exe   string
	env   []string
	dir   string
	files []string
}

// runOutcome is what one `vmlab run` of the section reported.
type runOutcome struct {
	s             float64 // wall time
	tests, cached int     // tests ended, of which cached
}

// run runs `vmlab run -j 1 -out DIR/name ARGS FILES...`, timed, and counts
// its tests from its events.jsonl.
func (b *scaleRunner) run(ctx context.Context, name string, args ...string) (runOutcome, error) {
	c := b.runCommand(ctx, name, args...)
	if err := c.Run(); err != nil {
		return runOutcome{}, err
	}
	tests, cached, err := countTests(filepath.Join(b.dir, name, "events.jsonl"))
	if err != nil {
		return runOutcome{}, err
	}
	if tests == 0 {
		return runOutcome{}, fmt.Errorf("vmlab run %s: no test ended", strings.Join(c.args, " "))
	}
	return runOutcome{s: c.took.Seconds(), tests: tests, cached: cached}, nil
}

// runCommand is `vmlab run -j 1 -snapshot off -out DIR/name ARGS
// FILES...`, not started: cold boots, so that the first of the runs
// compared takes no snapshot.
func (b *scaleRunner) runCommand(ctx context.Context, name string, args ...string) *scaleCommand {
	all := append([]string{"run", "-j", "1", "-snapshot", "off", "-out", filepath.Join(b.dir, name)}, args...)
	return b.command(ctx, append(all, b.files...)...)
}

func (b *scaleRunner) command(ctx context.Context, args ...string) *scaleCommand {
	cmd := exec.CommandContext(ctx, b.exe, args...)
	cmd.Env = b.env
	c := &scaleCommand{cmd: cmd, args: args}
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	return c
}

// scaleCommand is one vmlab process of the section and its wall time.
type scaleCommand struct {
	cmd   *exec.Cmd
	args  []string
	out   bytes.Buffer
	begun time.Time
	took  time.Duration
	ended chan struct{} // closed when wait has returned (took is set)
}

func (c *scaleCommand) start() error {
	c.begun, c.ended = time.Now(), make(chan struct{})
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start vmlab %s: %w", strings.Join(c.args, " "), err)
	}
	return nil
}

func (c *scaleCommand) wait() error {
	err := c.cmd.Wait()
	c.took = time.Since(c.begun)
	close(c.ended)
	if err != nil {
		return fmt.Errorf("vmlab %s: %w\n%s", strings.Join(c.args, " "), err, c.out.String())
	}
	return nil
}

// Run starts c and waits for it.
func (c *scaleCommand) Run() error {
	if err := c.start(); err != nil {
		return err
	}
	return c.wait()
}

// startCommands starts cmds; when one fails to start, the ones started
// before it are killed and waited for.
func startCommands(cmds []*scaleCommand) error {
	for i, c := range cmds {
		if err := c.start(); err != nil {
			for _, started := range cmds[:i] {
				started.cmd.Process.Kill()
				started.cmd.Wait()
			}
			return err
		}
	}
	return nil
}

// waitCommands waits for cmds, each on its own goroutine, so that each one's
// wall time ends when it does, not when one waited for before it does.
func waitCommands(cmds []*scaleCommand) error {
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() { errs[i] = c.wait() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// countTests reads a run's events.jsonl: how many tests ended, and how
// many of them were reported cached.
func countTests(path string) (tests, cached int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read the run's events: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev report.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return 0, 0, fmt.Errorf("read the run's events %s: %w", path, err)
		}
		if ev.Kind != report.TestEnd {
			continue
		}
		tests++
		if ev.Cached {
			cached++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read the run's events %s: %w", path, err)
	}
	return tests, cached, nil
}

// scaleSet names files for the table by their base names: "minimal, health".
func scaleSet(files []string) string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(filepath.Base(f), ".star")
	}
	return strings.Join(names, ", ")
}

func (s *scaleBench) print(tw io.Writer) {
	if s.ShardSingleS == 0 {
		return
	}
	fmt.Fprintf(tw, "shards of %s\t%d tests\t\t\n", scaleSet(s.files), s.ScaleTests)
	fmt.Fprintf(tw, "shards: 1 process / 2 at once (-j 1, split by a first run's durations)\t%.2f / %.2f s (%.2fx)\t~2x on 2 cores\t\n",
		s.ShardSingleS, s.ShardShardedS, s.ShardSpeedup)
	fmt.Fprintf(tw, "    shard 1/2, 2/2 (-cache=off): %d + %d tests\t%.2f / %.2f s\t\t\n",
		s.shards[0].tests, s.shards[1].tests, s.shards[0].s, s.shards[1].s)
	fmt.Fprintf(tw, "shards: vmlab report merge of the 2\t%.2f s\t\t\n", s.ShardMergeS)
	if s.CachedRunS == 0 {
		return
	}
	row := fmt.Sprintf("cached: the same tests again, %d of %d cached", s.CachedTests, s.ScaleTests)
	if s.cachedNote != "" {
		row += " (" + s.cachedNote + ")"
	}
	fmt.Fprintf(tw, "%s\t%.2f s\t<= %.0f s\t%s\n", row, s.CachedRunS, cachedRunTarget, verdict(s.CachedRunS <= cachedRunTarget && s.cachedNote == ""))
}

// scaleFiles splits -shard-files' value at commas; "" is none.
func scaleFiles(flag string) []string {
	var files []string
	for f := range strings.SplitSeq(flag, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	return files
}
