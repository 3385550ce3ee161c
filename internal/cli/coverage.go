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
	tests := make([]string, len(jobs))
	for i, j := range jobs {
		tests[i] = j.file.TestID(j.test)
	}
	if err := coverage.Prepare(dir, tests); err != nil {
		return fmt.Errorf("-coverage: %w", err)
	}
	for _, j := range jobs {
		j.file.Coverage = dir
	}
	return nil
}

// coverageIndex is the merged report's page in dir, which report.html
// links to when it is there; "": no -coverage.
func coverageIndex(dir string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, coverage.IndexFile)
}

// mergeCoverage is the merge vmlab run -coverage calls once every test
// has run; tests replace it.
var mergeCoverage = func(ctx context.Context, dir string, logf func(string, ...any)) (fmt.Stringer, error) {
	return coverage.Merge(ctx, dir, logf)
}

// mergeRun merges the run's coverage data in dir, before the reports are
// written (report.html links the merged report), and returns the summary
// the terminal prints after them. An interrupted run merges nothing: its
// raw data stays, and the summary says where.
func mergeRun(ctx context.Context, e *env, dir string) (string, error) {
	if ctx.Err() != nil {
		return fmt.Sprintf("coverage: not merged (interrupted); the raw data is in %s\n", filepath.Join(dir, coverage.RawDir)), nil
	}
	logf := func(format string, args ...any) { fmt.Fprintf(e.stderr, "coverage: "+format+"\n", args...) }
	sum, err := mergeCoverage(ctx, dir, logf)
	if err != nil {
		return "", fmt.Errorf("merge the coverage data in %s: %w", dir, err)
	}
	return strings.TrimRight(sum.String(), "\n") + "\n", nil
}
