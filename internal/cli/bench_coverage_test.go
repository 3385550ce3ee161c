package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchCoverageKeys: the figures are in `vmlab bench --json` under
// their stable names, and absent when not measured.
func TestBenchCoverageKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{coverageBench: coverageBench{CoverageOffS: 8, CoverageOnS: 9, CoverageOverhead: 1.125, CoverageMergeS: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"coverage_off_s":8`, `"coverage_on_s":9`, `"coverage_overhead":1.125`, `"coverage_merge_s":0.5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got %s; want %s in it", b, want)
		}
	}
	if b, _ := json.Marshal(&benchResult{}); strings.Contains(string(b), "coverage") {
		t.Errorf("got %s; want no coverage keys when they were not measured", b)
	}
}

// TestBenchCoveragePrint: the rows say both wall times, their ratio and
// the merge; unmeasured, they are absent.
func TestBenchCoveragePrint(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    coverageBench
		want []string
	}{
		{"measured", coverageBench{CoverageOffS: 8, CoverageOnS: 9, CoverageOverhead: 1.125, CoverageMergeS: 0.52},
			[]string{"coverage.star, with / without -coverage 9.00 / 8.00 s (1.12x)", "coverage merge: 2 machines, a Go and a C program 0.52 s"}},
		{"unmeasured", coverageBench{}, nil},
	} {
		checkRows(t, tt.name, tt.c.print, tt.want)
	}
}

// TestBenchCoverageMissing: a missing example file is skipped with a
// note, not a failure (bench runs from any directory).
func TestBenchCoverageMissing(t *testing.T) {
	var c coverageBench
	var stderr bytes.Buffer
	if err := c.benchCoverage(t.Context(), &env{stdout: &stderr, stderr: &stderr}, "no/such/coverage.star"); err != nil {
		t.Fatalf("got %v, want the missing file skipped", err)
	}
	if c.CoverageOnS != 0 || !strings.Contains(stderr.String(), "no coverage example") {
		t.Errorf("got coverage_on_s %v and %q; want 0 and a note", c.CoverageOnS, stderr.String())
	}
}

// TestBenchCoverageVM times the coverage example with and without
// -coverage (four runs) and the merge of its data.
func TestBenchCoverageVM(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	var c coverageBench
	var stderr bytes.Buffer
	if err := c.benchCoverage(t.Context(), &env{stdout: &stderr, stderr: &stderr}, "../../examples/coverage.star"); err != nil {
		t.Fatalf("bench coverage: %v\n%s", err, stderr.String())
	}
	if c.CoverageOffS <= 0 || c.CoverageOnS <= 0 || c.CoverageOverhead != c.CoverageOnS/c.CoverageOffS || c.CoverageMergeS <= 0 {
		t.Errorf("got %+v; want both wall times, their ratio and the merge's time", c)
	}
	t.Logf("coverage_off_s %.2f, coverage_on_s %.2f, coverage_overhead %.2f, coverage_merge_s %.2f",
		c.CoverageOffS, c.CoverageOnS, c.CoverageOverhead, c.CoverageMergeS)
}

// checkRows prints a bench section through a tabwriter as the table does
// and checks that each wanted row is in it (blanks collapsed), or, with
// want nil, that the section printed nothing.
func checkRows(t *testing.T, name string, print func(io.Writer), want []string) {
	t.Helper()
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	print(tw)
	tw.Flush()
	got := strings.Join(strings.Fields(b.String()), " ")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s: got %q, want %q in it", name, b.String(), w)
		}
	}
	if want == nil && b.Len() != 0 {
		t.Errorf("%s: got %q, want nothing", name, b.String())
	}
}
