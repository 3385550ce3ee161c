package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vmlab/vmlab/internal/coverage"
)

// prepareCoverage makes the coverage directory of vmlab run -coverage DIR
// ready before anything boots (coverage.Prepare, for the tests about to
// run), and has every test's machines collect into it.
func prepareCoverage(dir string, jobs []job) error {
	if err := coverage.Prepare(dir, jobTests(jobs)); err != nil {
		return fmt.Errorf("-coverage: %w", err)
	}
	for _, j := range jobs {
		j.file.Coverage = dir
	}
	return nil
}

// jobTests are the names of the jobs' tests in the coverage directory.
func jobTests(jobs []job) []string {
	tests := make([]string, len(jobs))
	for i, j := range jobs {
		tests[i] = j.file.TestID(j.test)
	}
	return tests
}

// mergeCoverage is the merge vmlab run -coverage calls once every test
// has run; tests replace it.
var mergeCoverage = func(ctx context.Context, dir string, tests []string, logf func(string, ...any)) (fmt.Stringer, error) {
	return coverage.Merge(ctx, dir, tests, logf)
}

// mergeRun merges the coverage data the run's tests left in dir, before
// the reports are written, and returns the summary the terminal prints
// after them and the merged report's page, which report.html links ("":
// no merged report). An interrupted run merges nothing: its raw data
// stays, and the summary says where.
func mergeRun(ctx context.Context, e *env, dir string, tests []string) (summary, index string, err error) {
	if ctx.Err() != nil {
		return fmt.Sprintf("coverage: not merged (interrupted); the raw data is in %s\n", filepath.Join(dir, coverage.RawDir)), "", nil
	}
	logf := func(format string, args ...any) { fmt.Fprintf(e.stderr, "coverage: "+format+"\n", args...) }
	sum, err := mergeCoverage(ctx, dir, tests, logf)
	if err != nil {
		return "", "", fmt.Errorf("merge the coverage data in %s: %w", dir, err)
	}
	return strings.TrimRight(sum.String(), "\n") + "\n", filepath.Join(dir, coverage.IndexFile), nil
}
