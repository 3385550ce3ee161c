package coverage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files Merge writes in the coverage directory.
const (
	IndexFile      = "index.html"    // the HTML report
	LCOVFile       = "lcov.info"     // LCOV, all machines merged
	MachineLCOVDir = "lcov"          // MACHINE.info: LCOV of one machine's counts
	CoberturaFile  = "cobertura.xml" // Cobertura XML, all machines merged
	SummaryFile    = "summary.txt"   // Summary.String
	GoHTMLDir      = "go"            // go tool cover's profile and page
	CHTMLDir       = "c"             // genhtml's pages (lcov) for C and C++
	filesDir       = "files"         // the annotated source pages
	goProfileFile  = "profile.txt"   // in GoHTMLDir: every Go block
	goFoundFile    = "found.txt"     // in GoHTMLDir: the blocks go tool cover is given
	cInfoFile      = "c.info"        // in CHTMLDir: genhtml's input
)

// Merge reads the raw data the tests left in dir (the layout in this
// package's doc; other tests' data there is not read) and writes the
// merged report beside it, first removing the outputs of an earlier
// merge, so that a merge that fails leaves none: index.html and a
// page per source file, lcov.info, cobertura.xml, summary.txt, and the
// toolchains' own pages (go tool cover -html for Go; genhtml, from the
// lcov package, for C when it is installed). It returns what the terminal
// prints.
//
// Nothing false is merged: a machine without data is named, not counted
// at 0%; data from different builds of one Go package or one C object is
// an error and no report is written. The Go toolchain is needed only when
// there is Go data, gcov only when there is C data. Go sources are found
// with go list from the current directory, as go tool cover finds them.
// logf gets what is worth knowing but not an error (a source not found, a
// tool missing); nil drops it.
func Merge(ctx context.Context, dir string, tests []string, logf func(string, ...any)) (Summary, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// Absolute: the tools run elsewhere (gcov in a scratch directory reads
	// the data through links), and a relative dir made every count zero.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Summary{Dir: dir}, fmt.Errorf("merge coverage in %s: %w", dir, err)
	}
	dir = abs
	tests = slices.Clone(tests)
	slices.Sort(tests)
	tests = slices.Compact(tests)
	sum := Summary{Dir: dir, Tests: tests}
	if err := removeOutputs(dir); err != nil {
		return sum, err
	}
	runs, err := scanRuns(dir, tests)
	if err != nil {
		return sum, err
	}
	var withData []*Run
	for _, r := range runs {
		if r.Excluded != "" {
			sum.Notes = append(sum.Notes, fmt.Sprintf("coverage data of %s in test %s not merged: %s", r.Machine, r.Test, r.Excluded))
		} else if r.HasData() {
			withData = append(withData, r)
		} else {
			sum.Notes = append(sum.Notes, fmt.Sprintf("no coverage data from %s in test %s: %s", r.Machine, r.Test, r.noDataWhy()))
		}
	}
	if len(withData) == 0 {
		var excluded []string
		for _, r := range runs {
			if r.Excluded != "" {
				excluded = append(excluded, fmt.Sprintf("%s in test %s: %s", r.Machine, r.Test, r.Excluded))
			}
		}
		if len(excluded) > 0 {
			return sum, fmt.Errorf("merging coverage in %s: no coverage data merged from any machine; not merged: %s", dir, strings.Join(excluded, "; "))
		}
		if !slices.ContainsFunc(runs, func(r *Run) bool { return r.noDataWhy() != buildHint }) {
			return sum, fmt.Errorf("merging coverage in %s: no coverage data from any machine: %s", dir, buildHint)
		}
		return sum, fmt.Errorf("merging coverage in %s: no coverage data from any machine: %s", dir, strings.Join(sum.Notes, "; "))
	}
	m, gd, err := read(ctx, withData, logf)
	if err != nil {
		return sum, fmt.Errorf("merging coverage in %s: %w", dir, err)
	}
	sum.Notes = append(sum.Notes, gd.refused...)
	if len(m.Files) == 0 && len(gd.refused) > 0 {
		return sum, fmt.Errorf("merging coverage in %s: nothing left to report: %s", dir, strings.Join(sum.Notes, "; "))
	}
	sum.fill(m, runs)
	if err := write(ctx, dir, m, gd, &sum, logf); err != nil {
		return sum, fmt.Errorf("writing the coverage report in %s: %w", dir, err)
	}
	return sum, nil
}

// buildHint is why a run left no data when nothing else explains it.
const buildHint = "were the binaries built with -cover / --coverage?"

// noDataWhy says why r left no data: what its state.json says cut its
// programs short (a crash, a kill: a process that ends by a signal, or
// with its machine, writes nothing), or that its services were stopped
// at the test's end, before the build hint, which is the reason only when
// nothing else explains the missing data.
func (r *Run) noDataWhy() string {
	const flush = "a Go program writes its counters when it exits normally, C and C++ at exit(), and a process killed by a signal or with its machine writes none"
	if r.Partial && len(r.Reasons) > 0 {
		return strings.Join(r.Reasons, "; ") + " (" + flush + ")"
	}
	if len(r.Services) > 0 {
		they := "they"
		if len(r.Services) == 1 {
			they = "it"
		}
		return fmt.Sprintf("its service%s %s ended without writing any: %s (a service stopped with SIGTERM must handle it and return from main, and one stopped before it got that far writes none); if %s did exit, %s",
			plural(len(r.Services)), strings.Join(r.Services, ", "), flush, they, buildHint)
	}
	return buildHint
}

// writeMachineLCOV writes lcov/MACHINE.info for every machine with data:
// which lines each machine ran, in a form CI tools read, where lcov.info
// merges the machines.
func writeMachineLCOV(dir string, m *Model) error {
	out := filepath.Join(dir, MachineLCOVDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// A merge before this one may have had other machines.
	stale, _ := filepath.Glob(filepath.Join(out, "*.info"))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	for _, name := range m.Machines {
		if err := os.WriteFile(filepath.Join(out, name+".info"), writeLCOV(m.Files, name), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// removeOutputs removes the files an earlier merge wrote in dir: a
// report, or a CI's lcov.info, must not outlive a merge that failed. Only
// the files a merge writes by name go (dir may be the user's own, with a
// go/ of theirs): genhtml's other pages in c/ stay, unlinked once
// c/index.html is gone.
func removeOutputs(dir string) error {
	names := []string{IndexFile, LCOVFile, CoberturaFile, SummaryFile,
		filepath.Join(GoHTMLDir, IndexFile), filepath.Join(GoHTMLDir, goProfileFile), filepath.Join(GoHTMLDir, goFoundFile),
		filepath.Join(CHTMLDir, IndexFile), filepath.Join(CHTMLDir, cInfoFile)}
	pages, _ := filepath.Glob(filepath.Join(dir, filesDir, "f[0-9]*.html"))
	machineLCOV, _ := filepath.Glob(filepath.Join(dir, MachineLCOVDir, "*.info"))
	pages = append(pages, machineLCOV...)
	for _, name := range names {
		pages = append(pages, filepath.Join(dir, name))
	}
	for _, p := range pages {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the earlier coverage report's %s: %w", p, err)
		}
	}
	return nil
}

// read builds the model from the runs' data.
func read(ctx context.Context, runs []*Run, logf func(string, ...any)) (*Model, *goData, error) {
	tmp, err := os.MkdirTemp("", "vmlab-coverage-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	b := newBuilder(runs)
	gd, goErr := readGo(ctx, b, tmp)
	cErr := readGcov(ctx, b, tmp, logf)
	if err := errors.Join(goErr, cErr); err != nil {
		return nil, nil, err
	}
	if gd != nil {
		resolveGo(ctx, b, gd, logf)
		// A C source edited since its build: its counts are the build's
		// lines, which are not today's.
		for _, name := range sortedKeys(b.newer) {
			delete(b.files, name)
			gd.refused = append(gd.refused, fmt.Sprintf("C source %s not reported: it was modified after it was compiled (it is newer than the build's notes file %s), so its counts would land on other lines; rebuild it with --coverage and run again", name, b.newer[name]))
		}
	}
	return b.model(), gd, nil
}

// write writes every output of the report into dir; the index last, so
// that it links only what exists.
func write(ctx context.Context, dir string, m *Model, gd *goData, sum *Summary, logf func(string, ...any)) error {
	cob, err := writeCobertura(m.Files, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, LCOVFile), writeLCOV(m.Files, ""), 0o644); err != nil {
		return err
	}
	if err := writeMachineLCOV(dir, m); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CoberturaFile), cob, 0o644); err != nil {
		return err
	}
	links := htmlLinks{LCOV: LCOVFile, Cobertura: CoberturaFile, Summary: SummaryFile}
	if len(gd.blocks) > 0 {
		if page, err := goCoverHTML(ctx, dir, gd); err != nil {
			sum.Notes = append(sum.Notes, err.Error())
		} else {
			links.Go = page
			sum.Reports = append(sum.Reports, filepath.Join(dir, page))
		}
	}
	if page, err := cGenHTML(ctx, dir, m); err != nil {
		sum.Notes = append(sum.Notes, err.Error())
	} else if page != "" {
		links.C = page
		sum.Reports = append(sum.Reports, filepath.Join(dir, page))
	}
	if err := writeHTML(dir, m, sum, links); err != nil {
		return err
	}
	sum.Reports = append([]string{filepath.Join(dir, IndexFile), filepath.Join(dir, LCOVFile), filepath.Join(dir, CoberturaFile)}, sum.Reports...)
	return os.WriteFile(filepath.Join(dir, SummaryFile), []byte(sum.String()), 0o644)
}

// Summary is what a merge found, for the terminal (String) and
// summary.txt.
type Summary struct {
	Dir      string
	Tests    []string         // the tests merged, sorted
	Machines []MachineSummary // sorted by name
	Total    Stat             // every machine together
	Files    int              // source files
	// Notes are what the report lacks and why: machines without data,
	// a tool that is missing or failed.
	Notes []string
	// Reports are the paths written, the HTML index first.
	Reports []string
}

// MachineSummary is one machine's coverage over every test it was in.
type MachineSummary struct {
	Name string
	Stat
	// Partial lists why the machine's data may miss counts, each
	// "TEST: reason"; empty when it is complete.
	Partial []string
}

func (s *Summary) fill(m *Model, runs []*Run) {
	s.Total, s.Files = m.Stat(""), len(m.Files)
	for _, name := range m.Machines {
		ms := MachineSummary{Name: name, Stat: m.Stat(name)}
		for _, r := range runs {
			if r.Machine == name && r.Partial {
				for _, why := range r.partialReasons() {
					ms.Partial = append(ms.Partial, r.Test+": "+why)
				}
			}
		}
		s.Machines = append(s.Machines, ms)
	}
}

// String is the summary as the terminal shows it: a line per machine and
// one for all of them, the notes, the report's paths.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "coverage: %d source file%s, %d machine%s", s.Files, plural(s.Files), len(s.Machines), plural(len(s.Machines)))
	if len(s.Tests) > 0 {
		fmt.Fprintf(&b, ", test%s %s", plural(len(s.Tests)), strings.Join(s.Tests, ", "))
	}
	b.WriteByte('\n')
	width := len("all machines")
	for _, m := range s.Machines {
		width = max(width, len(m.Name))
	}
	line := func(name string, st Stat, partial []string) {
		fmt.Fprintf(&b, "  %-*s %5.1f%% of %d lines (%d covered)", width, name, st.Percent(), st.Lines, st.Covered)
		if len(partial) > 0 {
			fmt.Fprintf(&b, "  PARTIAL: %s", strings.Join(partial, "; "))
		}
		b.WriteByte('\n')
	}
	for _, m := range s.Machines {
		line(m.Name, m.Stat, m.Partial)
	}
	if len(s.Machines) > 0 {
		line("all machines", s.Total, nil)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	if len(s.Reports) > 0 {
		fmt.Fprintf(&b, "  report: %s\n", strings.Join(s.Reports, ", "))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

func sortedKeysFunc[K comparable, V any](m map[K]V, less func(a, b K) int) []K {
	return slices.SortedFunc(maps.Keys(m), less)
}
