package vmlab

import (
	"context"
	"strings"

	"github.com/vmlab/vmlab/internal/coverage"
)

// MergeCoverage merges what the labs made with Coverage(dir) collected
// into one report in dir, as vmlab run -coverage does after its tests
// (docs/coverage.md), and returns the summary vmlab run prints. Call it
// once the tests have run, from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if summary, err := vmlab.MergeCoverage(context.Background(), "cov"); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = max(code, 1)
//		} else {
//			fmt.Print(summary)
//		}
//		os.Exit(code)
//	}
//
// What the merge notes on the way (a source not found, a tool missing) is
// in the summary's notes or the error.
func MergeCoverage(ctx context.Context, dir string) (string, error) {
	sum, err := coverage.Merge(ctx, abs(dir), nil)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(sum.String(), "\n") + "\n", nil
}
