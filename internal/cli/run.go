package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/script"
)

// runRun is `vmlab run FILES...`: check every file, then run the selected
// tests, each on a fresh set of machines. Exit codes (docs/cli.md): 0 when
// all pass, 1 when any fails, 2 on bad usage or a bad file (reported before
// any VM boots), 3 on an internal error, 128+N when signal N stopped it.
func runRun(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "run", "FILE.star...")
	var bf bootFlags
	bf.register(fs)
	pattern := fs.String("run", "", "run only the tests whose names match this `regexp` (the function, test_x, or file.test_x)")
	list := fs.Bool("list", false, "list the tests that would run (with -shard, its), one file.test per line, and boot nothing; with -json, one JSON object each with its file, machines, memory and last duration (docs/cli.md#listing-and-shards)")
	verbose := fs.Bool("v", false, "show every command and the consoles as they go")
	out := fs.String("out", "", "write logs, captures and reports to `dir` (default: a new directory in $TMPDIR, removed when all pass unless -keep)")
	keep := fs.Bool("keep", false, "keep the output directory even when all tests pass")
	junit := fs.String("junit", "", "also write a JUnit XML report to `file`")
	jsonEvents := fs.Bool("json", false, "print the events as JSON lines on stdout instead of the terminal report (with -list, the tests)")
	timeout := fs.Duration("timeout", 0, "fail a test that runs longer than this, and a file whose top level does (default: 30m, 6m under KVM; 1m for a file's top level)")
	parallel := fs.Int("j", 0, "run this many tests at once (default: what cores and memory allow: under TCG each booting machine wants a core, and each its memory)")
	inter := &interactive{e: e}
	fs.Var(inter, "i", "when a test fails, open the REPL on its machines, still up, before going on (-i=always: after every test); needs a terminal, runs one test at a time")
	cover := fs.String("coverage", "", "collect the coverage of every command and service (Go built with -cover, C with --coverage) in `dir` and merge it there after the tests (docs/coverage.md)")
	var sf shardFlags
	sf.register(fs)
	keepState := fs.String("keep-state", "", "keep the machines' disks in `dir` (DIR/MACHINE.img) and reuse them next time; one file, its tests one at a time")
	rc := registerResultCache(fs)
	if ok, code := parseMixed(e, fs, args, func() bool { return fs.NArg() > 0 }); !ok {
		return code
	}
	paths, err := expandDirs(fs.Args())
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	files, err := loadAll(ctx, paths, cmp.Or(*timeout, defaultLoadTimeout))
	if ctx.Err() != nil {
		e.errorf("%v", context.Cause(ctx))
		return interruptedCode(ctx)
	}
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	for _, f := range files {
		// Each test's machines are reachable while it runs: vmlab shell
		// -lab FILE.TEST MACHINE. A test also running in another vmlab
		// keeps its name there, and this one runs without a socket.
		serveLabs(f, "run", control.CleanName, nil, e.errorf)
	}
	jobs, err := selectJobs(files, *pattern)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	plan, err := sf.plan(jobs)
	if err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	jobs = plan.jobs
	if *cover != "" && inter.on() {
		e.errorf("-coverage: not with -i (the machines of a test the REPL opens on outlive it)")
		return exitUsage
	}
	if err := errors.Join(inter.check(*jsonEvents), rc.check()); err != nil {
		e.errorf("%v", err)
		return exitUsage
	}
	if inter.on() {
		*parallel = 1 // one REPL at a time on the terminal
		for i := range jobs {
			jobs[i].interact = inter
		}
	}
	if *keepState != "" && !*list {
		state, err := applyRunState(files, *keepState)
		if err != nil {
			e.errorf("-keep-state: %v", err)
			return exitUsage
		}
		defer state.Close()
		*parallel = 1 // the tests share the disks
	}
	if fixedHostPorts(files) {
		*parallel = 1 // two tests at once would both bind the port
	}
	if *list {
		return plan.list(e, *jsonEvents, sf.spec != "", bf)
	}
	dir, removeDir, code, err := prepareOutputs(*out, *junit)
	if err != nil {
		e.errorf("%v", err)
		return code
	}
	if *cover != "" {
		if err := prepareCoverage(*cover, jobs); err != nil {
			e.errorf("%v", err)
			if removeDir {
				machine.RemoveTempDir(dir)
			}
			return exitUsage
		}
	}
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		if removeDir {
			machine.RemoveTempDir(dir)
		}
		return exitInternal
	}
	var coverIndex string // set when this run's merge succeeded
	rep, closeEvents, err := reporter(e, dir, *junit, func() string { return coverIndex }, *jsonEvents, *verbose, inter, rc)
	if err == nil {
		err = plan.start(e, dir)
	}
	if err != nil {
		e.errorf("%v", err)
		return exitInternal
	}
	rep = plan.record(ctx, e, rep, inter.on())
	if *timeout == 0 {
		*timeout = 6 * time.Minute * time.Duration(boot.Accel.TimeoutScale())
	}
	if *parallel <= 0 {
		*parallel = defaultJobs(files, bf.memory)
	}
	jobs = rc.start(ctx, e, jobs, boot, *timeout, bf, *cover != "" || inter.on() || *keepState != "", rep)
	jobsCtx := ctx
	if inter.on() {
		// exit() at the REPL stops the run as a signal would, but for
		// the exit status: the tests left are skipped.
		var stop context.CancelCauseFunc
		jobsCtx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		inter.stopRun = stop
	}
	res := runJobs(jobsCtx, jobs, *parallel, *timeout, boot, dir, rep)
	var coverSummary string
	var coverErr error
	if *cover != "" {
		coverSummary, coverIndex, coverErr = mergeRun(ctx, e, *cover, jobTests(jobs))
	}
	reportErr := errors.Join(rep.Close(), closeEvents())
	if reportErr != nil {
		e.errorf("write reports: %v", reportErr)
	}
	if coverErr != nil {
		e.errorf("%v", coverErr)
	}
	if *jsonEvents {
		fmt.Fprint(e.stderr, coverSummary) // stdout is the events'
	} else {
		fmt.Fprint(e.stdout, coverSummary)
	}
	code = runExit(ctx, res, reportErr)
	if coverErr != nil && code == exitOK {
		// No data (binaries not instrumented), two builds of one
		// program: what was asked for is not there, and vmlab is not
		// at fault.
		code = exitFail
	}
	plan.finish(e, dir, code)
	switch {
	case ctx.Err() != nil:
		keepDir(dir, removeDir)
		e.errorf("%v; reports so far are in %s", context.Cause(ctx), dir)
	case code == exitOK && !*keep && removeDir:
		machine.RemoveTempDir(dir)
	default:
		keepDir(dir, removeDir)
		fmt.Fprintf(e.stderr, "vmlab: report in %s (console logs, captures, junit.xml and events.jsonl beside it)\n", filepath.Join(dir, "report.html"))
	}
	if res.internal > 0 {
		e.errorf("%d of the tests failed on an internal error in vmlab (a panic): its stack is in the reports", res.internal)
	}
	return code
}

// applyRunState opens the state directory for the one file of a run with
// --keep-state and gives the file's machines their images there.
func applyRunState(files []*script.File, dir string) (*machine.State, error) {
	if len(files) != 1 {
		return nil, fmt.Errorf("a state directory holds the machines of one test file; %d files given", len(files))
	}
	f := files[0]
	cfgs := make([]machine.Config, len(f.Specs))
	for i, s := range f.Specs {
		cfgs[i] = machine.Config{Machine: s}
	}
	state, err := machine.ApplyState(cfgs, dir, f.Name)
	if err != nil {
		return nil, err
	}
	f.DiskImages = make(map[string]string, len(cfgs))
	for _, c := range cfgs {
		f.DiskImages[c.Name] = c.DiskImage
	}
	return state, nil
}

// fixedHostPorts says whether a machine of the files forwards a fixed
// host port (forward_ports = {8080: 80}): its tests then run one at a
// time, as only one machine at a time can bind the host's port.
func fixedHostPorts(files []*script.File) bool {
	for _, f := range files {
		for _, m := range f.Specs {
			for _, fw := range m.ForwardPorts {
				if fw.HostPort != 0 {
					return true
				}
			}
		}
	}
	return false
}

// defaultLoadTimeout bounds a file's top level when -timeout is not given:
// it only declares machines (the examples load in milliseconds), so a
// minute is an endless loop.
const defaultLoadTimeout = time.Minute

// job is one test of one file.
type job struct {
	file *script.File
	test string
	// interact, with -i, opens the REPL on the test's machines after it
	// failed (or ended) and before they stop.
	interact *interactive
}

// run runs the job under tctx (the test's deadline), its files in outDir;
// ctx is the run's, which the REPL of -i lives under.
func (j job) run(ctx, tctx context.Context, boot *machine.Boot, outDir string, rep *report.Reporter) error {
	if j.interact.on() {
		return j.interact.run(ctx, tctx, j, boot, outDir, rep)
	}
	return j.file.Run(tctx, j.test, boot, outDir, rep)
}

// selectJobs returns the tests of files that pattern selects, in order; no
// test at all is an error.
func selectJobs(files []*script.File, pattern string) ([]job, error) {
	var jobs []job
	byID := make(map[string]*script.File) // the file each selected test id came from
	for _, f := range files {
		tests, err := f.Select(pattern)
		if err != nil {
			return nil, err
		}
		for _, t := range tests {
			id := f.TestID(t)
			if other, ok := byID[id]; ok && other.Name == f.Name {
				return nil, fmt.Errorf("selecting tests: %s is given twice (its test %s would run twice into one output directory); give it once", f.Name, id)
			} else if ok {
				return nil, fmt.Errorf("selecting tests: %s and %s both name their test %s: its output directory, cached result and report entry would be shared; rename one of the files (or run them apart)", other.Name, f.Name, id)
			}
			byID[id] = f
			jobs = append(jobs, job{file: f, test: t})
		}
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("no test matches -run %q", pattern)
	}
	return jobs, nil
}

// results counts the tests that failed, those of them that failed on an
// internal error, and the tests that never started.
type results struct{ failed, internal, skipped int }

// runJobs runs the jobs, parallel at a time, each under timeout, until
// they are done or ctx ends. A job that has not started when ctx ends
// never starts: it is reported as skipped.
func runJobs(ctx context.Context, jobs []job, parallel int, timeout time.Duration, boot *machine.Boot, dir string, rep *report.Reporter) results {
	var failed, internal, skipped atomic.Int32
	queue := make(chan job)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for j := range queue {
				if ctx.Err() != nil {
					skip(ctx, j, rep)
					skipped.Add(1)
					continue
				}
				id := j.file.TestID(j.test)
				tctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("test %s timed out after %v", id, timeout))
				err := j.run(ctx, tctx, boot, filepath.Join(dir, id), rep)
				cancel()
				var ie *script.InternalError
				if errors.As(err, &ie) {
					internal.Add(1)
				}
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	sent := feed(ctx, queue, jobs)
	for _, j := range jobs[sent:] {
		skip(ctx, j, rep)
		skipped.Add(1)
	}
	close(queue)
	wg.Wait()
	return results{failed: int(failed.Load()), internal: int(internal.Load()), skipped: int(skipped.Load())}
}

// feed sends jobs to queue until all are sent or ctx ends, and returns how
// many it sent.
func feed(ctx context.Context, queue chan<- job, jobs []job) int {
	for i, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
			return i
		}
	}
	return len(jobs)
}

// skip reports a job that never started because ctx ended first.
func skip(ctx context.Context, j job, rep *report.Reporter) {
	rep.Emit(report.Event{Kind: report.TestEnd, Test: j.file.TestID(j.test), Skipped: true,
		Text: fmt.Sprintf("not started: %v", context.Cause(ctx))})
}

// runExit is the exit code of a run whose tests ran: a signal that stopped
// it first, then an internal error (a test's panic, reports not written),
// then a failed test or one that never ran (exit() at run -i's REPL).
func runExit(ctx context.Context, res results, reportErr error) int {
	switch {
	case ctx.Err() != nil:
		return interruptedCode(ctx)
	case res.internal > 0 || reportErr != nil:
		return exitInternal
	case res.failed > 0 || res.skipped > 0:
		return exitFail
	}
	return exitOK
}

// expandDirs replaces each directory among paths with the .star files in
// it, sorted; files stay as they are.
func expandDirs(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			out = append(out, p) // loadAll reports a missing file
			continue
		}
		stars, err := filepath.Glob(filepath.Join(p, "*.star"))
		if err != nil {
			return nil, err
		}
		if len(stars) == 0 {
			return nil, fmt.Errorf("%s: no .star files in the directory", p)
		}
		out = append(out, stars...)
	}
	return out, nil
}

// loadAll loads and checks every file, reporting all their errors
// together. Each file's top level runs for at most timeout, and stops when
// ctx ends.
func loadAll(ctx context.Context, paths []string, timeout time.Duration) ([]*script.File, error) {
	var files []*script.File
	var errs []error
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%s: its top level ran longer than %v (-timeout)", p, timeout))
		f, err := script.LoadContext(lctx, p, src)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return files, errors.Join(errs...)
}

// prepareOutputs creates the output directory and checks that the -junit
// file can be written, before anything boots: a report that cannot be
// written is bad input (exitUsage), known at once rather than after the
// last test. A temporary directory vmlab cannot make is exitInternal.
func prepareOutputs(out, junit string) (dir string, removable bool, code int, err error) {
	dir, removable, err = outputDir(out)
	if err != nil {
		if out != "" {
			return "", false, exitUsage, err
		}
		return "", false, exitInternal, err
	}
	if err := checkWritable(junit); err != nil {
		if removable {
			machine.RemoveTempDir(dir)
		}
		return "", false, exitUsage, fmt.Errorf("-junit %s: %w", junit, err)
	}
	return dir, removable, exitOK, nil
}

// checkWritable says why the file at path could not be created or
// replaced: its directory is missing or not one, or path is a directory.
// "" is fine: no file.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist (vmlab creates only -out)", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("is a directory, want a file")
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	return nil
}

func outputDir(out string) (dir string, removable bool, err error) {
	if out != "" {
		if err := os.MkdirAll(out, 0o700); err != nil {
			return "", false, fmt.Errorf("create the output directory (-out): %w", err)
		}
		return out, false, nil
	}
	// A temporary directory: a later run removes it if this one is killed.
	dir, err = machine.MakeTempDir("vmlab-run-")
	return dir, true, err
}

// keepDir leaves a temporary output directory to the user, who was told
// where it is: later runs no longer remove it.
func keepDir(dir string, temporary bool) {
	if temporary {
		machine.KeepTempDir(dir)
	}
}

// reporter assembles the sinks: the terminal (or JSON lines on stdout),
// events.jsonl, junit.xml and report.html (linking the merged coverage
// report coverIndex returns, when it returns one) in the output directory, and the
// -junit file, then extra. With -i, the files are behind inter.hold.
func reporter(e *env, dir, junit string, coverIndex func() string, jsonEvents, verbose bool, inter *interactive, extra ...report.Sink) (*report.Reporter, func() error, error) {
	events, err := report.Create(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	files := []report.File{report.JUnitFile(filepath.Join(dir, "junit.xml")), report.HTMLFileWithCoverage(filepath.Join(dir, "report.html"), coverIndex)}
	if junit != "" {
		files = append(files, report.JUnitFile(junit))
	}
	sinks := []report.Sink{report.NewJSONLines(events), report.NewFiles(files...)}
	if inter.on() {
		inter.hold = newEndHold(sinks...)
		sinks = []report.Sink{inter.hold}
	}
	if jsonEvents {
		sinks = append(sinks, report.NewJSONLines(e.stdout))
	} else {
		sinks = append(sinks, report.NewTerminal(e.stdout, report.TerminalFor(e.stdout, verbose)))
	}
	return report.New(append(sinks, extra...)...), events.Close, nil
}

// defaultJobs is how many tests run at once by default: half the cores
// (a test's machines boot together and each wants a core under TCG), and no
// more than the available memory holds for the largest test's machines.
func defaultJobs(files []*script.File, defaultMiB int) int {
	jobs := max(1, runtime.NumCPU()/2)
	need := 0
	for _, f := range files {
		total := 0
		for _, s := range f.Specs {
			mib := s.MemoryMiB
			if mib == 0 {
				mib = defaultMiB
			}
			total += mib
		}
		need = max(need, total)
	}
	if avail := availableMiB(); avail > 0 && need > 0 {
		jobs = min(jobs, max(1, avail/need))
	}
	return jobs
}

// availableMiB reads MemAvailable from /proc/meminfo; 0 when unknown.
func availableMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}
