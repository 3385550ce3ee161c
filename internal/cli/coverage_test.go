package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCoverageFlag: -coverage DIR (before or after the files) is checked
// before anything boots: a DIR that cannot be made, or that holds the
// data of a test about to run from an earlier run, is bad input (exit 2),
// naming it; so is -coverage with -i. The boot cannot be prepared here
// (-qemu names no QEMU, exit 3), so an exit 2 proves the check came first,
// and an exit 3 that -coverage was accepted.
func TestCoverageFlag(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o600)
	earlier := filepath.Join(tmp, "earlier")
	os.MkdirAll(filepath.Join(earlier, "raw", "pass.test_hostname", "m"), 0o700)
	noQEMU := filepath.Join(tmp, "no-qemu")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"a file", []string{"-coverage", file, "testdata/pass.star"}, exitUsage,
			"-coverage: create the coverage directory " + file},
		{"earlier data", []string{"testdata/pass.star", "-coverage", earlier}, exitUsage,
			"-coverage: coverage directory " + earlier + ": " + filepath.Join(earlier, "raw", "pass.test_hostname") + " holds an earlier run's data for test pass.test_hostname: remove it, or name another directory"},
		{"with -i", []string{"-i", "-coverage", filepath.Join(tmp, "i"), "testdata/pass.star"}, exitUsage, "-coverage: not with -i"},
		{"new, after the files", []string{"testdata/pass.star", "-coverage", filepath.Join(tmp, "new")}, exitInternal, "no-qemu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(append([]string{"run", "-qemu", noQEMU}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "new", "raw")); err != nil {
		t.Errorf("-coverage's directory was not made before the boot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "i")); err == nil {
		t.Errorf("-coverage with -i made its directory; want nothing made")
	}
}

type summary string

func (s summary) String() string { return string(s) }

// TestMergeRun: the merge is called with the coverage directory and the
// run's tests, its summary kept for the terminal and its page for
// report.html; its error is the run's, with no page to link (an earlier
// run's may be there); an interrupted run merges nothing and says where
// the raw data is.
func TestMergeRun(t *testing.T) {
	defer func(m func(context.Context, string, []string, func(string, ...any)) (fmt.Stringer, error)) {
		mergeCoverage = m
	}(mergeCoverage)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	var merged []string
	mergeCoverage = func(ctx context.Context, dir string, tests []string, logf func(string, ...any)) (fmt.Stringer, error) {
		merged = append(merged, dir+" "+strings.Join(tests, ","))
		logf("merging %s", dir)
		if dir == "bad" {
			return summary("half a summary"), errors.New("two builds of example.com/prog")
		}
		return summary("total: 75.0% of lines"), nil
	}
	tests := []struct {
		name    string
		ctx     context.Context
		dir     string
		summary string
		index   string
		err     string
		mergeOn bool
	}{
		{"merged", context.Background(), "cov", "total: 75.0% of lines\n", filepath.Join("cov", "index.html"), "", true},
		{"merge fails", context.Background(), "bad", "", "", "merge the coverage data in bad: two builds of example.com/prog", true},
		{"interrupted", canceled, "cov", "coverage: not merged (interrupted); the raw data is in " + filepath.Join("cov", "raw") + "\n", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			merged = nil
			var stderr strings.Builder
			e := &env{stdout: io.Discard, stderr: &stderr}
			sum, index, err := mergeRun(tt.ctx, e, tt.dir, []string{"f.t1", "f.t2"})
			if got := fmt.Sprint(err); tt.err == "" && err != nil || tt.err != "" && got != tt.err {
				t.Errorf("got error %v, want %q", err, tt.err)
			}
			if sum != tt.summary || index != tt.index {
				t.Errorf("got summary %q and page %q, want %q and %q", sum, index, tt.summary, tt.index)
			}
			if (len(merged) == 1 && merged[0] == tt.dir+" f.t1,f.t2") != tt.mergeOn {
				t.Errorf("merged %q, want the merge called %v with %q", merged, tt.mergeOn, tt.dir)
			}
			if tt.mergeOn && stderr.String() != "coverage: merging "+tt.dir+"\n" {
				t.Errorf("the merge's log: got %q", stderr.String())
			}
		})
	}
}
