package vmlab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vmlab/vmlab/internal/coverage"
)

// MergeCoverage merges what the labs this process made with Coverage(dir)
// collected into one report in dir, as vmlab run -coverage does after its
// tests (docs/coverage.md), and returns the summary vmlab run prints.
// Data that other processes (an earlier go test) left in dir is not
// read. Call it once the tests have run, from TestMain:
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
	dir = abs(dir)
	tests := coverTests.of(dir)
	if len(tests) == 0 {
		return "", fmt.Errorf("merging coverage in %s: no lab of this process collected coverage there (vmlab.Coverage(%q))", dir, dir)
	}
	sum, err := coverage.Merge(ctx, dir, tests, nil)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(sum.String(), "\n") + "\n", nil
}

// coverTests records, per coverage directory, the tests whose labs
// collected into it in this process: what MergeCoverage merges.
var coverTests = &testsByDir{m: map[string][]string{}}

type testsByDir struct {
	mu sync.Mutex
	m  map[string][]string
}

func (t *testsByDir) add(dir, test string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !slices.Contains(t.m[dir], test) {
		t.m[dir] = append(t.m[dir], test)
	}
}

func (t *testsByDir) of(dir string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.m[dir])
}
