package cli

import (
	"context"
	"fmt"
	"io"
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

// mergeCoverage is the merge vmlab run -coverage calls once every test
// has run: coverage.Merge(ctx, dir, logf), which builds the report from
// the raw data and returns the summary the terminal shows. nil until the
// merge (package coverage's report) is there: the run then only says
// where the raw data is.
var mergeCoverage func(ctx context.Context, dir string, logf func(string, ...any)) (fmt.Stringer, error)

// finishCoverage merges the run's coverage data in dir and prints the
// summary on w. An interrupted run merges nothing: its raw data stays.
func finishCoverage(ctx context.Context, e *env, dir string, w io.Writer) error {
	if ctx.Err() != nil || mergeCoverage == nil {
		fmt.Fprintf(w, "coverage: raw data in %s\n", filepath.Join(dir, coverage.RawDir))
		return nil
	}
	logf := func(format string, args ...any) { fmt.Fprintf(e.stderr, "coverage: "+format+"\n", args...) }
	sum, err := mergeCoverage(ctx, dir, logf)
	if err != nil {
		return fmt.Errorf("merge the coverage data in %s: %w", dir, err)
	}
	fmt.Fprintln(w, strings.TrimRight(sum.String(), "\n"))
	return nil
}
