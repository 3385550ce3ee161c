package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/coverage"
)

// coverageBench is the coverage section of `vmlab bench`
// (docs/coverage.md#example): what -coverage costs the coverage example
// (examples/coverage.star, kv and tally on a server and a client).
type coverageBench struct {
	// CoverageOffS and CoverageOnS are `vmlab run` of the example without
	// and with -coverage, end to end (with: the clean shutdowns and the
	// merge included), the faster of coverageRuns alternating runs each.
	CoverageOffS float64 `json:"coverage_off_s,omitempty"`
	CoverageOnS  float64 `json:"coverage_on_s,omitempty"`
	// CoverageOverhead is CoverageOnS / CoverageOffS.
	CoverageOverhead float64 `json:"coverage_overhead,omitempty"`
	// CoverageMergeS is coverage.Merge of the last run's data (two
	// machines, one Go and one C program), run again after it.
	CoverageMergeS float64 `json:"coverage_merge_s,omitempty"`
}

// coverageRuns is how many runs with and without -coverage the figures
// take the faster of: the example takes ~8 s under TCG, and the host's
// load moves one run by more than -coverage costs.
const coverageRuns = 2

// benchCoverage times file with and without -coverage, alternating, and
// the merge of its data. The programs are built with the example's
// build script when they are not (coverageBuild); a missing file, or a
// build that fails (no gcc), skips it, saying so.
func (c *coverageBench) benchCoverage(ctx context.Context, e *env, file string) error {
	if file == "" {
		return nil
	}
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no coverage example: %v\n", err)
		return nil
	}
	if err := coverageBuild(ctx, e, file); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no coverage example: %v\n", err)
		return nil
	}
	dir, err := os.MkdirTemp("", "vmlab-bench-coverage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var off, on []time.Duration
	var cov string
	for i := range coverageRuns {
		fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run %s, without and with -coverage (%d of %d)\n", file, i+1, coverageRuns)
		d, err := timeRun(ctx, file)
		if err != nil {
			return err
		}
		off = append(off, d)
		cov = filepath.Join(dir, fmt.Sprintf("cov%d", i))
		if d, err = timeRun(ctx, file, "-coverage", cov); err != nil {
			return err
		}
		on = append(on, d)
	}
	c.CoverageOffS, c.CoverageOnS = slices.Min(off).Seconds(), slices.Min(on).Seconds()
	c.CoverageOverhead = c.CoverageOnS / c.CoverageOffS
	// The tests the last run left, merged again on their own.
	entries, err := os.ReadDir(filepath.Join(cov, coverage.RawDir))
	if err != nil {
		return fmt.Errorf("read the coverage of %s: %w", file, err)
	}
	var tests []string
	for _, en := range entries {
		tests = append(tests, en.Name())
	}
	start := time.Now()
	if _, err := coverage.Merge(ctx, cov, tests, nil); err != nil {
		return fmt.Errorf("merge the coverage of %s again: %w", file, err)
	}
	c.CoverageMergeS = time.Since(start).Seconds()
	return nil
}

// timeRun times `vmlab run -j 1 ARGS FILE` in this process, as benchmark
// (e) times the client/server example.
func timeRun(ctx context.Context, file string, args ...string) (time.Duration, error) {
	var out strings.Builder
	start := time.Now()
	if code := benchRun(ctx, &out, append(append([]string{"-j", "1"}, args...), file)...); code != exitOK {
		return 0, fmt.Errorf("vmlab run %s %s: exit %d\n%s", strings.Join(args, " "), file, code, out.String())
	}
	return time.Since(start), nil
}

// coverageBuild runs the example's build script (coverage/build.sh beside
// file) when the programs it makes are not there, as a user does before
// the first run.
func coverageBuild(ctx context.Context, e *env, file string) error {
	example := filepath.Join(filepath.Dir(file), "coverage")
	missing := false
	for _, p := range []string{"bin/kv", "bin/tally"} {
		if _, err := os.Stat(filepath.Join(example, p)); errors.Is(err, fs.ErrNotExist) {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	script := filepath.Join(example, "build.sh")
	fmt.Fprintf(e.stderr, "vmlab: bench: building the coverage example's programs: %s\n", script)
	if out, err := exec.CommandContext(ctx, "sh", script).CombinedOutput(); err != nil {
		return fmt.Errorf("build the programs with %s: %w\n%s", script, err, out)
	}
	return nil
}

func (c *coverageBench) print(tw io.Writer) {
	if c.CoverageOnS == 0 {
		return
	}
	fmt.Fprintf(tw, "vmlab run examples/coverage.star, with / without -coverage\t%.2f / %.2f s (%.2fx)\t\t\n",
		c.CoverageOnS, c.CoverageOffS, c.CoverageOverhead)
	fmt.Fprintf(tw, "coverage merge: 2 machines, a Go and a C program\t%.2f s\t\t\n", c.CoverageMergeS)
}
