package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/shard"
	"golang.org/x/sys/unix"
)

// runReport is `vmlab report SUBCOMMAND`: for now, merge.
func runReport(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 && args[0] == "merge" {
		return runReportMerge(ctx, e, args[1:])
	}
	w, code := e.stderr, exitUsage
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		w, code = e.stdout, exitOK
	} else if len(args) > 0 {
		e.errorf("report: unknown subcommand %q", args[0])
	}
	fmt.Fprint(w, "usage: vmlab report merge -out DIR SHARD_DIR...\n\n"+
		"  merge   join the output directories of a sharded run (vmlab run -shard I/N -out DIR)\n"+
		"          into one events.jsonl, junit.xml and report.html in DIR\n\n"+
		"vmlab help report merge (or vmlab report merge -h) shows its flags.\n")
	return code
}

// runReportMerge is `vmlab report merge -out DIR SHARD_DIRS...`: one
// events.jsonl, junit.xml and report.html from the output directories of
// the shards of one run, with each test's shard and host, the tests in the
// selection's order, and each test's files copied into DIR. Exit codes:
// 0 when every test passed (or was cached), 1 when one failed or did not
// run (a shard missing or killed), 2 on bad input (shards of different
// runs, selections, versions or counts; a directory without run.json; two
// directories of one shard), 3 when the merged files could not be
// written.
func runReportMerge(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "report merge", "SHARD_DIR...")
	out := fs.String("out", "", "write the merged events.jsonl, junit.xml, report.html and the tests' files to `dir` (new or empty)")
	force := fs.Bool("force", false, "merge into a -out directory that is not empty, replacing the merged files and test directories of the same names")
	valid := func() bool {
		switch {
		case *out == "":
			e.errorf("report merge: no -out: give the directory for the merged report")
		case fs.NArg() == 0:
			e.errorf("report merge: no shard directory: give the -out directories of the shards' vmlab run -shard I/N")
		default:
			return true
		}
		return false
	}
	if ok, code := parseMixed(e, fs, args, valid); !ok {
		return code
	}
	if err := checkMergeOut(*out, fs.Args(), *force); err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	shards, err := readShards(fs.Args())
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	plan, err := planMerge(shards)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	if len(shards) > 1 && shards[0].m.RunID == "" {
		fmt.Fprintf(e.stderr, "vmlab: warning: the shards' run id is empty, so shards of different runs cannot be told apart: set VMLAB_RUN_ID to one value for every shard of a run (CI sets one: GITHUB_RUN_ID, CI_PIPELINE_ID, BUILDKITE_BUILD_ID)\n")
	}
	sum, err := writeMerge(*out, plan, *force)
	if err != nil {
		e.errorf("%v", err)
		return exitInternal
	}
	sum.print(e.stdout, plan)
	for _, n := range sum.notes {
		fmt.Fprintf(e.stderr, "vmlab: merge: %s\n", n)
	}
	fmt.Fprintf(e.stderr, "vmlab: merged report in %s (junit.xml, events.jsonl and the tests' files beside it)\n", filepath.Join(*out, "report.html"))
	if sum.total.failed > 0 || sum.total.notRun > 0 {
		return exitFail
	}
	return exitOK
}

// checkMergeOut refuses an output directory that is one of the inputs or
// inside one (the merge would change a shard's output), and one that is
// not empty unless force: it may hold a previous merge or anything else
// of the user's.
func checkMergeOut(out string, inputs []string, force bool) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("-out %s: %w", out, err)
	}
	realOut := realPath(absOut)
	for _, in := range inputs {
		absIn, err := filepath.Abs(in)
		if err != nil {
			return fmt.Errorf("shard directory %s: %w", in, err)
		}
		realIn := realPath(absIn)
		if realOut == realIn || strings.HasPrefix(realOut, realIn+string(filepath.Separator)) {
			return fmt.Errorf("-out %s is the shard directory %s or inside it: give a directory of its own for the merged report", out, in)
		}
	}
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-out %s: %w", out, err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("-out %s is not empty (a previous merge?): give a new or empty directory, or -force to replace the merged files in it", out)
	}
	return nil
}

// realPath is path with its symbolic links resolved, as far as it exists.
func realPath(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	dir, base := filepath.Split(path)
	if dir == path || base == "" {
		return path
	}
	return filepath.Join(realPath(filepath.Clean(dir)), base)
}

// mergeShard is one shard's output directory as read.
type mergeShard struct {
	dir string
	m   *shard.Manifest
	// events are the shard's events per test, in their order; noEvents
	// says why there are none at all (events.jsonl missing).
	events   map[string][]report.Event
	noEvents string
	last     time.Time // the shard's last event, or its manifest's end
}

// readShards reads each directory's run.json and events.jsonl. A
// directory without run.json is bad input (it is not a run's output); a
// shard without events.jsonl is a shard whose tests did not finish
// (planMerge reports them failed), not bad input.
func readShards(dirs []string) ([]*mergeShard, error) {
	var shards []*mergeShard
	var errs []error
	for _, dir := range dirs {
		m, err := shard.ReadManifest(dir)
		if errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: no %s: not the -out directory of a vmlab run (give the directories of vmlab run -shard I/N -out DIR)", dir, shard.ManifestFile))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s := &mergeShard{dir: dir, m: m, events: make(map[string][]report.Event), last: m.Started}
		if m.Ended.After(s.last) {
			s.last = m.Ended
		}
		if err := s.readEvents(); err != nil {
			errs = append(errs, err)
		}
		shards = append(shards, s)
	}
	return shards, errors.Join(errs...)
}

func (s *mergeShard) readEvents() error {
	path := filepath.Join(s.dir, "events.jsonl")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.noEvents = fmt.Sprintf("shard %s on %s left no events.jsonl in %s", s.m.ShardName(), hostName(s.m), s.dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the events of shard %s: %w", s.m.ShardName(), err)
	}
	defer f.Close()
	events, _, err := report.ReadEvents(f)
	if err != nil {
		return fmt.Errorf("reading the events of shard %s (%s): %w", s.m.ShardName(), path, err)
	}
	for _, ev := range events {
		if ev.Test == "" {
			continue // not a test's: a REPL's attach
		}
		if !slices.Contains(s.m.Tests, ev.Test) {
			return fmt.Errorf("reading the events of shard %s (%s): test %s is not among the tests of its %s", s.m.ShardName(), path, ev.Test, shard.ManifestFile)
		}
		s.events[ev.Test] = append(s.events[ev.Test], ev)
		if ev.Time.After(s.last) {
			s.last = ev.Time
		}
	}
	return nil
}

// sameTests says whether a and b list the same tests, in any order.
func sameTests(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func hostName(m *shard.Manifest) string { return cmp.Or(m.Host, "an unknown host") }

// mergePlan is the merge checked: every shard of one run, and which shard
// ran each test of the selection.
type mergePlan struct {
	all     []string               // the selection, in the lowest-index shard's run order
	total   int                    // shards in the run
	shards  []*mergeShard          // present, by index
	owner   map[string]*mergeShard // by test id; none: its shard is missing
	missing []int                  // shard indexes with no directory
}

// planMerge checks that the shards are of one run and assigns the tests.
// Shards of other runs, selections, vmlab versions or shard counts are
// refused naming them; so are two directories of one shard and a test in
// two shards. A missing shard is no error: its tests are not run.
func planMerge(shards []*mergeShard) (*mergePlan, error) {
	first := shards[0]
	var errs []error
	for _, s := range shards[1:] {
		for _, f := range []struct{ what, a, b string }{
			{"run id", first.m.RunID, s.m.RunID},
			{"vmlab version", first.m.Vmlab, s.m.Vmlab},
			{"shard count", fmt.Sprint(first.m.Total), fmt.Sprint(s.m.Total)},
			{"selection", first.m.Selection, s.m.Selection},
		} {
			if f.a != f.b {
				errs = append(errs, fmt.Errorf("%s (shard %s) and %s (shard %s) are of different runs: %s %q and %q; merge the shards of one run", first.dir, first.m.ShardName(), s.dir, s.m.ShardName(), f.what, f.a, f.b))
			}
		}
		if len(errs) == 0 && !sameTests(first.m.All, s.m.All) {
			errs = append(errs, fmt.Errorf("%s and %s list different selections of tests in their %s; merge the shards of one run", first.dir, s.dir, shard.ManifestFile))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The runners may have been given the files in different orders: the
	// merged report follows the lowest-index shard's.
	lowest := slices.MinFunc(shards, func(a, b *mergeShard) int { return cmp.Compare(a.m.Index, b.m.Index) })
	p := &mergePlan{all: lowest.m.All, total: first.m.Total, owner: make(map[string]*mergeShard)}
	if p.total < 1 {
		return nil, fmt.Errorf("%s: shard count %d in its %s, want at least 1", first.dir, p.total, shard.ManifestFile)
	}
	for _, id := range p.all {
		// A test's id names its directory, in the shard's and in -out.
		if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
			return nil, fmt.Errorf("%s: test id %q in its %s is not a file.test_x name", first.dir, id, shard.ManifestFile)
		}
	}
	byIndex := make(map[int]*mergeShard)
	for _, s := range shards {
		i := s.m.Index
		switch other := byIndex[i]; {
		case i < 1 || i > p.total:
			errs = append(errs, fmt.Errorf("%s: shard index %d in its %s is not within 1..%d", s.dir, i, shard.ManifestFile, p.total))
		case other != nil:
			errs = append(errs, fmt.Errorf("%s and %s are both shard %s: give each shard's directory once", other.dir, s.dir, s.m.ShardName()))
		default:
			byIndex[i] = s
		}
	}
	for i := 1; i <= p.total; i++ {
		if s := byIndex[i]; s != nil {
			p.shards = append(p.shards, s)
		} else {
			p.missing = append(p.missing, i)
		}
	}
	for _, s := range p.shards {
		for _, id := range s.m.Tests {
			switch other := p.owner[id]; {
			case !slices.Contains(p.all, id):
				errs = append(errs, fmt.Errorf("%s: test %s of shard %s is not in the run's selection", s.dir, id, s.m.ShardName()))
			case other != nil:
				errs = append(errs, fmt.Errorf("test %s is in shard %s (%s) and in shard %s (%s): the shards were not split from one selection", id, other.m.ShardName(), other.dir, s.m.ShardName(), s.dir))
			default:
				p.owner[id] = s
			}
		}
	}
	return p, errors.Join(errs...)
}

// counts are tests by outcome; passed counts the cached too, as a run's
// summary does ("4 passed (4 cached), 0 failed").
type counts struct{ passed, failed, cached, notRun int }

func (c counts) String() string {
	return fmt.Sprintf("%d passed%s, %d failed, %d not run", c.passed, report.CachedNote(c.cached), c.failed, c.notRun)
}

func (c *counts) add(ev report.Event) {
	switch {
	case ev.Cached:
		c.cached++
		c.passed++
	case ev.Skipped:
		c.notRun++
	case ev.Passed:
		c.passed++
	default:
		c.failed++
	}
}

// mergeSummary is what the merge found, per shard and in all.
type mergeSummary struct {
	perShard map[*mergeShard]*counts
	orphans  counts // tests of missing shards, or of none
	total    counts
	notes    []string // files cut at mergeFileCap
}

func (sum *mergeSummary) print(w io.Writer, p *mergePlan) {
	for _, s := range p.shards {
		state := ""
		switch {
		case s.noEvents != "":
			state = ": left no events.jsonl"
		case !s.m.Complete:
			state = ": did not finish"
		}
		fmt.Fprintf(w, "shard %s on %s (%s): %s%s\n", s.m.ShardName(), hostName(s.m), s.dir, sum.perShard[s], state)
	}
	for _, i := range p.missing {
		fmt.Fprintf(w, "shard %d/%d: missing\n", i, p.total)
	}
	if sum.orphans.notRun > 0 {
		fmt.Fprintf(w, "%d tests of no shard given: not run\n", sum.orphans.notRun)
	}
	fmt.Fprintf(w, "merged: %s\n", sum.total)
}

// writeMerge writes the merged events and reports in out, feeding the
// events through the report package's sinks test by test in the
// selection's order, each test's files copied from its shard's directory
// into out (and the events' paths to them rewritten).
func writeMerge(out string, p *mergePlan, force bool) (*mergeSummary, error) {
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, fmt.Errorf("creating the merged report's directory (-out): %w", err)
	}
	events, err := report.Create(filepath.Join(out, "events.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("writing the merged events: %w", err)
	}
	rep := report.New(report.NewJSONLines(events), report.NewFiles(
		report.JUnitFile(filepath.Join(out, "junit.xml")), report.HTMLFile(filepath.Join(out, "report.html"))))
	sum := &mergeSummary{perShard: make(map[*mergeShard]*counts)}
	for _, s := range p.shards {
		sum.perShard[s] = &counts{}
	}
	var copyErrs []error
	for _, id := range p.all {
		s := p.owner[id]
		if s == nil {
			end := report.Event{Kind: report.TestEnd, Test: id, Skipped: true, Text: p.whyNotRun()}
			if len(p.missing) == 1 {
				end.Shard = fmt.Sprintf("%d/%d", p.missing[0], p.total)
			}
			rep.Emit(end)
			sum.orphans.add(end)
			sum.total.add(end)
			continue
		}
		notes, err := copyTestDir(s.dir, out, id, testRefs(s.events[id], id), force)
		if err != nil {
			copyErrs = append(copyErrs, err)
		}
		sum.notes = append(sum.notes, notes...)
		end := emitTest(rep, s, id, out)
		sum.perShard[s].add(end)
		sum.total.add(end)
	}
	err = errors.Join(append(copyErrs, rep.Close(), events.Close(), writeMergedTimings(out, p))...)
	if err != nil {
		return nil, fmt.Errorf("writing the merged report in %s: %w", out, err)
	}
	return sum, nil
}

// writeMergedTimings writes out/timings.json: the duration of each test a
// shard ran to its end (passed or failed; not skipped), under its key in
// the timings file. A cached test's is the duration of the run that
// passed before (its test-end's), seen when the cache reported it: without
// it, the next split would weigh the test the median. It is what the next
// sharded run reads with -timings, the same file on every runner
// (docs/scale-out.md). The file is this merge's alone: written whole,
// without a lock file beside it.
func writeMergedTimings(out string, p *mergePlan) error {
	tests := shard.Timings{}
	for _, id := range p.all {
		s := p.owner[id]
		if s == nil || s.m.Keys[id] == "" {
			continue
		}
		for _, ev := range s.events[id] {
			if ev.Kind == report.TestEnd && len(ev.Path) == 0 && !ev.Skipped && ev.Duration > 0 {
				tests[s.m.Keys[id]] = shard.Timing{ID: id, Duration: ev.Duration.Seconds(), Seen: ev.Time}
			}
		}
	}
	return shard.WriteTimings(filepath.Join(out, "timings.json"), tests, time.Now())
}

// whyNotRun says why a test no shard ran was not run.
func (p *mergePlan) whyNotRun() string {
	switch len(p.missing) {
	case 0:
		return "in no shard's tests: no shard ran it"
	case 1:
		return fmt.Sprintf("shard %d/%d missing", p.missing[0], p.total)
	}
	names := make([]string, len(p.missing))
	for i, m := range p.missing {
		names[i] = fmt.Sprintf("%d/%d", m, p.total)
	}
	return "shards " + strings.Join(names, ", ") + " missing (one of them was to run it)"
}

// emitTest emits test id's events from shard s, with the shard and host
// on its start and end and its files' paths in out, and returns its end.
// A test that has no end (its shard was killed, or left no events) ends
// failed, saying why.
func emitTest(rep *report.Reporter, s *mergeShard, id, out string) report.Event {
	shardName := s.m.ShardName()
	evs := s.events[id]
	var end *report.Event
	for _, ev := range evs {
		if ev.Kind == report.TestStart || ev.Kind == report.TestEnd {
			ev.Shard, ev.Host = shardName, s.m.Host
		}
		var dropped []string
		for _, p := range []*string{&ev.File, &ev.StdoutFile, &ev.StderrFile} {
			moved, ok := movedPath(*p, id, out)
			if !ok {
				dropped = append(dropped, *p)
			}
			*p = moved
		}
		if len(dropped) > 0 {
			note := fmt.Sprintf("(merge: dropped %q: not in the test's directory of shard %s)", dropped, shardName)
			ev.Text = strings.TrimSpace(ev.Text + " " + note)
		}
		rep.Emit(ev)
		if ev.Kind == report.TestEnd {
			end = &ev
		}
	}
	if end != nil {
		return *end
	}
	why := fmt.Sprintf("shard %s on %s did not finish", shardName, hostName(s.m))
	switch {
	case s.noEvents != "":
		why = s.noEvents
	case s.m.Complete:
		why = fmt.Sprintf("shard %s on %s ended without a result for this test", shardName, hostName(s.m))
	}
	if len(evs) == 0 {
		rep.Emit(report.Event{Time: s.last, Kind: report.TestStart, Test: id, Shard: shardName, Host: s.m.Host})
	}
	e := report.Event{Time: s.last, Kind: report.TestEnd, Test: id, Error: why, Shard: shardName, Host: s.m.Host}
	rep.Emit(e)
	return e
}

// testRefs are the files test id's events name, as paths relative to the
// test's directory.
func testRefs(evs []report.Event, id string) map[string]bool {
	refs := make(map[string]bool)
	for _, ev := range evs {
		for _, p := range []string{ev.File, ev.StdoutFile, ev.StderrFile} {
			if moved, ok := movedPath(p, id, "."); ok && moved != "" {
				if rel, err := filepath.Rel(id, moved); err == nil && rel != "." {
					refs[rel] = true
				}
			}
		}
	}
	return refs
}

// movedPath is a file path of test id's events as it is in the merged
// directory out: the test's files are under its own directory, "ID/...",
// in the shard's output (wherever the shard ran), and copyTestDir copies
// that directory to out/ID. A path that is not under out/ID once moved
// and cleaned (no directory of the test's name, or "ID/../../x") is
// dropped: "" and false. A shard's events are not trusted to name host
// files for the merged report to read.
func movedPath(path, id, out string) (string, bool) {
	if path == "" {
		return "", true
	}
	parts := strings.Split(filepath.ToSlash(path), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] != id {
			continue
		}
		rel := filepath.Clean(filepath.Join(parts[i+1:]...))
		if !filepath.IsLocal(rel) {
			return "", false
		}
		return filepath.Join(out, id, rel), true
	}
	return "", false
}

// copyTestDir copies to out/id what the reports show or link of the
// shard's directory of test id: the files its events name (refs: paths
// relative to that directory, from movedPath; a directory named, what
// copy_from_vm copied, is copied whole), and the outputs a test that did
// not finish leaves before any event names them (the captures and
// screenshots at its top, files/, each machine's console.log and
// output/: docs/cli.md's output files). A machine's scratch is never
// copied, even when named: its root.img and other disk images, its
// hostview/ (a generated shadow, SSH host keys, /var) and its sockets,
// which a killed run leaves behind. Only regular files (0600) and
// directories (0700) are made: symbolic links and other special files are
// skipped, a shard's directory is not trusted not to point at the host's
// files (docs/scale-out.md). Each file is copied sparse and at most
// mergeFileCap bytes of it; notes say which were cut. With force, a
// directory of that name already in out is replaced.
func copyTestDir(shardDir, out, id string, refs map[string]bool, force bool) (notes []string, err error) {
	src, dst := filepath.Join(shardDir, id), filepath.Join(out, id)
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, nil // a test that wrote no files, or one not started; or no directory
	}
	if force {
		if err := os.RemoveAll(dst); err != nil {
			return nil, fmt.Errorf("replacing %s: %w", dst, err)
		}
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copying the files of test %s: %w", id, err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return os.MkdirAll(dst, 0o700)
		}
		if machineScratch(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !wantedTestFile(rel, refs) {
			return nil
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return fmt.Errorf("copying the files of test %s to %s: %w", id, dst, err)
		}
		cut, err := copyPrivate(path, target, mergeFileCap)
		if err != nil {
			return fmt.Errorf("copying the files of test %s to %s: %w", id, dst, err)
		}
		if cut > 0 {
			notes = append(notes, fmt.Sprintf("%s: copied its first %d MiB only (%d MiB left out); the whole file is in %s", target, mergeFileCap>>20, cut>>20, path))
		}
		return nil
	})
	return notes, err
}

// mergeFileCap bounds each file merge copies: a console log or capture
// that grew without end is cut, with a note.
var mergeFileCap int64 = 1 << 30

// machineScratch says whether rel, a path in a test's directory, is a
// machine's scratch: MACHINE/root.img and the other disk images
// (MACHINE/*.img), MACHINE/hostview/. files/ is the test's own
// (copy_from_vm), whatever it holds.
func machineScratch(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 2 || parts[0] == "files" {
		return false
	}
	return parts[1] == "hostview" || (len(parts) == 2 && strings.HasSuffix(parts[1], ".img"))
}

// wantedTestFile says whether merge copies rel, a regular file in a
// test's directory: one its events name (or under one they name), or an
// output a report shows of a test that did not finish.
func wantedTestFile(rel string, refs map[string]bool) bool {
	for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
		if refs[p] {
			return true
		}
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	switch {
	case len(parts) == 1:
		ext := filepath.Ext(rel)
		return ext == ".pcap" || ext == ".png"
	case parts[0] == "files":
		return true
	case len(parts) == 2:
		return parts[1] == "console.log"
	default:
		return parts[1] == "output"
	}
}

// copyPrivate copies the regular file src to a new file dst, readable by
// its owner only, at most limit bytes of it: its data only, the holes of a
// sparse file (SEEK_DATA, SEEK_HOLE) and blocks of zeros left holes in the
// copy. It returns how many bytes past limit were left out.
func copyPrivate(src, dst string, limit int64) (cut int64, err error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0, errors.Join(err, fmt.Errorf("%s: not a regular file", src))
	}
	size := fi.Size()
	if size > limit {
		cut, size = size-limit, limit
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	err = copySparse(out, in, size)
	return cut, errors.Join(err, out.Close())
}

// copySparse copies in's first size bytes to out at the same offsets,
// writing the data extents only (all of in when the file system cannot
// say where they are), and within them no block of zeros.
func copySparse(out, in *os.File, size int64) error {
	const block = 64 << 10
	buf := make([]byte, block)
	zero := make([]byte, block)
	for off := int64(0); off < size; {
		start, end := off, size
		if data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA); errors.Is(err, unix.ENXIO) {
			break // a hole to the end
		} else if err == nil {
			start = data
			if hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE); err == nil {
				end = min(hole, size)
			}
		}
		for pos := start; pos < end; {
			n, err := in.ReadAt(buf[:min(block, end-pos)], pos)
			if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
				if _, werr := out.WriteAt(buf[:n], pos); werr != nil {
					return werr
				}
			}
			pos += int64(n)
			if err == io.EOF {
				end = pos // the file shrank while read
				break
			}
			if err != nil {
				return err
			}
		}
		off = max(end, start+1)
		if end <= start {
			break
		}
	}
	return out.Truncate(size)
}
