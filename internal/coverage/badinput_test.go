package coverage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noReport checks that a failed merge wrote no report.
func noReport(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{IndexFile, LCOVFile, CoberturaFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s written after a failed merge", f)
		}
	}
}

func TestMergeGoDifferentBuilds(t *testing.T) {
	src1, src2, dir := t.TempDir(), t.TempDir(), t.TempDir()
	// The second build has one more function: the package's meta-data,
	// and its hash, differ.
	bin1 := buildGo(t, src1, "")
	bin2 := buildGo(t, src2, "\nfunc Added() int { return 2 }\n")
	runGo(t, dir, "t1", "server", bin1, "server")
	runGo(t, dir, "t1", "client", bin2, "client")
	t.Chdir(src1)
	_, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil {
		t.Fatal("merged two builds of one package without an error")
	}
	for _, w := range []string{"example.com/covdemo/lib", "different builds", "server in t1", "client in t1", "rebuild"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	noReport(t, dir)
}

func TestMergeCDifferentBuilds(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	// Rebuilt after the server ran: the server's .gcda no longer matches
	// the notes file in the build tree.
	buildC(t, src, strings.Replace(cSource, "return 1;", "return 2;", 1))
	runC(t, dir, "t1", "client", bin, "client")
	_, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil {
		t.Fatal("merged a .gcda of another build without an error")
	}
	for _, w := range []string{"server in test t1", "demo.gcda", "different build", "stamp mismatch"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "client") {
		t.Errorf("error %q blames the client, whose data matches the build", err)
	}
	noReport(t, dir)
}

func TestMergeCNotesGone(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	if err := os.Remove(filepath.Join(src, "demo.gcno")); err != nil {
		t.Fatal(err)
	}
	_, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil || !strings.Contains(err.Error(), "demo.gcno") || !strings.Contains(err.Error(), "rebuild") {
		t.Fatalf("merge without the notes file: error %v, want one naming demo.gcno and what to do", err)
	}
}

func TestMergeNoData(t *testing.T) {
	dir := t.TempDir()
	// Both machines ran, under a -coverage run, binaries built without
	// instrumentation: the directories exist and hold nothing.
	for _, m := range []string{"server", "client"} {
		writeState(t, dir, State{Test: "t1", Machine: m})
		for _, d := range []string{GoDir, GcovDir} {
			if err := os.MkdirAll(GuestData(MachineDir(dir, "t1", m), d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil || !strings.Contains(err.Error(), "no coverage data from any machine: were the binaries built with -cover / --coverage?") {
		t.Fatalf("error %v, want one saying no machine left data", err)
	}
	if got := strings.Join(sum.Notes, "\n"); !strings.Contains(got, "no coverage data from client in test t1") || !strings.Contains(got, "no coverage data from server in test t1") {
		t.Errorf("notes %q, want both machines named", got)
	}
	noReport(t, dir)
}

func TestMergeNoRawDir(t *testing.T) {
	dir := t.TempDir()
	_, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil || !strings.Contains(err.Error(), "vmlab run -coverage") {
		t.Fatalf("error %v, want one saying the directory is not a coverage run's", err)
	}
}

// One machine ran an instrumented program, the other one without: the
// report covers the first, names the second, and counts it nowhere.
func TestMergeOneMachineWithoutData(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	writeState(t, dir, State{Test: "t1", Machine: "client"})
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Machines) != 1 || sum.Machines[0].Name != "server" {
		t.Errorf("summary machines %+v, want server only", sum.Machines)
	}
	want := "no coverage data from client in test t1: were the binaries built with -cover / --coverage?"
	if !strings.Contains(sum.String(), want) {
		t.Errorf("summary:\n%s\nwant the line %q", sum, want)
	}
	index, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	if !strings.Contains(string(index), want) {
		t.Errorf("index.html does not say %q", want)
	}
	if strings.Contains(string(index), `<th class="n">client</th>`) {
		t.Error("index.html has a column for client, which left no data")
	}
}

// A machine marked partial by the run, and a Go program that wrote its
// meta-data at start but was killed before it wrote counters.
func TestMergePartial(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "t1", "server", bin, "server")
	runGo(t, dir, "t1", "client", bin, "client")
	writeState(t, dir, State{Test: "t1", Machine: "server", Partial: true, Reasons: []string{"crashed"}})
	writeState(t, dir, State{Test: "t1", Machine: "client"})
	counters, _ := filepath.Glob(filepath.Join(GuestData(MachineDir(dir, "t1", "client"), GoDir), "covcounters.*"))
	if len(counters) != 1 {
		t.Fatalf("client's counter files: %v, want one", counters)
	}
	// The client also ran a second program with its own meta-data file
	// but no counters: the first program's meta-data under another name
	// (the hash in the name is only matched against counter files).
	meta, _ := filepath.Glob(filepath.Join(GuestData(MachineDir(dir, "t1", "client"), GoDir), "covmeta.*"))
	data, err := os.ReadFile(meta[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(meta[0]), "covmeta.00000000000000000000000000000000"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(src)
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	partial := map[string]string{}
	for _, m := range sum.Machines {
		partial[m.Name] = strings.Join(m.Partial, "; ")
	}
	if partial["server"] != "t1: crashed" {
		t.Errorf("server's partial reasons %q, want %q", partial["server"], "t1: crashed")
	}
	if !strings.Contains(partial["client"], "no run of a Go program wrote counters") {
		t.Errorf("client's partial reasons %q, want the program without counters", partial["client"])
	}
	if !strings.Contains(sum.String(), "PARTIAL: t1: crashed") {
		t.Errorf("summary does not mark server partial:\n%s", sum)
	}
	index, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	if !strings.Contains(string(index), `<span class="partial">partial data</span>: t1: crashed`) {
		t.Error("index.html does not mark server partial")
	}
	if !strings.Contains(string(index), `<tr><td>t1</td><td>server</td><td class="n mid">`) || !strings.Contains(string(index), `<span class="partial">partial</span>: crashed</td></tr>`) {
		t.Error("index.html's per-test table does not mark server in t1 partial")
	}
}

func TestMergeNoStateIsPartial(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Machines) != 1 || !strings.Contains(strings.Join(sum.Machines[0].Partial, ""), "no state.json") {
		t.Errorf("machines %+v, want server partial for want of its state", sum.Machines)
	}
}

func TestMergeToolMissing(t *testing.T) {
	for _, tt := range []struct {
		name, file, want string
	}{
		{"go", filepath.Join(GuestDir, GoDir, "covmeta.0123"), "install Go"},
		{"gcov", filepath.Join(GuestDir, GcovDir, "build", "x.gcda"), "install the gcc that built the programs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeState(t, dir, State{Test: "t1", Machine: "server"})
			writeFiles(t, MachineDir(dir, "t1", "server"), map[string]string{tt.file: "data"})
			t.Setenv("PATH", t.TempDir())
			_, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "server in test t1") {
				t.Errorf("error %v, want one naming the machine and saying %q", err, tt.want)
			}
		})
	}
}

// Two builds of one source (two checkouts, two build machines) carry the
// same package hashes: they merge.
func TestMergeGoSameSourceTwoBuilds(t *testing.T) {
	src1, src2, dir := t.TempDir(), t.TempDir(), t.TempDir()
	runGo(t, dir, "t1", "server", buildGo(t, src1, ""), "server")
	runGo(t, dir, "t1", "client", buildGo(t, src2, ""), "client")
	t.Chdir(src1)
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatalf("two builds of one source: %v", err)
	}
	if len(sum.Machines) != 2 {
		t.Errorf("machines %+v, want server and client", sum.Machines)
	}
}

// Programs built from files named on the command line all have the
// package path command-line-arguments: different programs are not
// different builds of one package. Their absolute names are read as
// sources only inside the current module (the merge runs in it).
func TestMergeGoCommandLinePrograms(t *testing.T) {
	skipShort(t)
	dir, src := t.TempDir(), t.TempDir()
	writeFiles(t, src, map[string]string{"go.mod": "module example.com/cmds\n"})
	t.Chdir(src)
	for _, m := range []string{"server", "client"} {
		writeFiles(t, src, map[string]string{m + ".go": "package main\n\nfunc main() {\n\tprintln(\"" + m + "\")\n}\n"})
		bin := filepath.Join(src, m)
		run(t, src, []string{"GOFLAGS=", "GOWORK=off", "GO111MODULE=off"}, "go", "build", "-cover", "-o", bin, m+".go")
		runGo(t, dir, "t1", m, bin, m)
		writeState(t, dir, State{Test: "t1", Machine: m})
	}
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatalf("two programs of command-line files: %v", err)
	}
	if sum.Files != 2 || sum.Total != (Stat{4, 4}) {
		t.Errorf("%d files, %+v lines; want 2 files, their 4 lines run:\n%s", sum.Files, sum.Total, sum)
	}
}

// Run from outside the module that built the programs, the merge finds no
// Go sources: counts and lcov stay, pages say the source is missing, and
// Go's own page is left out with a note.
func TestMergeGoSourcesNotFound(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "t1", "server", bin, "server")
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	t.Chdir(t.TempDir())
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total.Covered == 0 {
		t.Errorf("no covered lines without the sources:\n%s", sum)
	}
	if !strings.Contains(strings.Join(sum.Notes, "\n"), "no Go page by go tool cover -html: no Go source was found (run vmlab from inside the module that built the programs)") {
		t.Errorf("notes %q, want one about go tool cover's page", sum.Notes)
	}
	lcov := readLCOV(t, filepath.Join(dir, LCOVFile))
	if _, ok := lcov["example.com/covdemo/lib/lib.go"]; !ok {
		t.Errorf("lcov.info has no record for lib.go by its import path: %v", lcov)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, filesDir, "*.html"))
	for _, p := range pages {
		data, _ := os.ReadFile(p)
		if !strings.Contains(string(data), "The source was not found") {
			t.Errorf("%s does not say its source is missing", p)
		}
	}
}

// A run merges its own tests only: an earlier run's data in the same
// directory (another test's) is not counted, and the summary names the
// tests merged.
func TestMergeOnlyTheRunsTests(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "f.earlier", "server", bin, "server")
	writeState(t, dir, State{Test: "f.earlier", Machine: "server"})
	// This run's machine ran nothing instrumented.
	writeState(t, dir, State{Test: "f.now", Machine: "server"})
	sum, err := Merge(context.Background(), dir, []string{"f.now"}, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "no coverage data from any machine") {
		t.Fatalf("got %v and summary\n%s\nwant an error saying the run left no data", err, sum)
	}
	// With data in both, the run's test only, named in the summary.
	runGo(t, dir, "f.now", "client", bin, "client")
	writeState(t, dir, State{Test: "f.now", Machine: "client"})
	sum, err = Merge(context.Background(), dir, []string{"f.now"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Machines) != 1 || sum.Machines[0].Name != "client" || !strings.HasPrefix(sum.String(), "coverage: 2 source files, 1 machine, test f.now\n") {
		t.Errorf("summary:\n%s\nwant client's data only, of test f.now", sum)
	}
}

// A merge removes an earlier merge's outputs first: one that fails
// leaves no report (nor lcov.info for a CI) from before.
func TestMergeRemovesEarlierReport(t *testing.T) {
	dir := t.TempDir()
	earlier := []string{IndexFile, LCOVFile, CoberturaFile, SummaryFile, filepath.Join(GoHTMLDir, IndexFile), filepath.Join(GoHTMLDir, goProfileFile),
		filepath.Join(CHTMLDir, IndexFile), filepath.Join(CHTMLDir, cInfoFile), filepath.Join(filesDir, "f0.html"), filepath.Join(filesDir, "f12.html")}
	for _, name := range earlier {
		writeFiles(t, dir, map[string]string{name: "earlier"})
	}
	// What the merge does not write by name is the user's: it stays.
	theirs := filepath.Join(GoHTMLDir, "main.go")
	writeFiles(t, dir, map[string]string{theirs: "package main"})
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	if _, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf); err == nil {
		t.Fatal("a merge without data succeeded")
	}
	for _, name := range earlier {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s from an earlier merge is still there", name)
		}
	}
	if _, err := os.Stat(MachineDir(dir, "t1", "server")); err != nil {
		t.Errorf("the raw data went with the report: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, theirs)); err != nil {
		t.Errorf("a file the merge does not write went with the report: %v", err)
	}
}

// When every machine's data was excluded, the merge's error says why,
// not that the binaries were not instrumented.
func TestMergeAllExcluded(t *testing.T) {
	dir := t.TempDir()
	writeState(t, dir, State{Test: "t1", Machine: "server", Partial: true, Excluded: "the share holds go, which is not a regular file or directory (L---------)"})
	_, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf)
	if want := "no coverage data merged from any machine; not merged: server in test t1: the share holds go, which is not a regular file or directory"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want an error with %q", err, want)
	}
}

// A machine that left no data is blamed on the build only when nothing
// else explains it: a crash or a kill the run recorded, or services the
// test's end stopped, come first (the trial's b crashed right after its
// service started, and the merge asked whether it was built with -cover).
func TestMergeNoDataReasons(t *testing.T) {
	dir := t.TempDir()
	for _, st := range []State{
		{Test: "t1", Machine: "crashed", Partial: true, Reasons: []string{"crashed: crash() killed it"}},
		{Test: "t1", Machine: "served", Services: []string{"app", "web"}},
		{Test: "t1", Machine: "plain"},
	} {
		writeState(t, dir, st)
		for _, d := range []string{GoDir, GcovDir} {
			if err := os.MkdirAll(GuestData(MachineDir(dir, st.Test, st.Machine), d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	notes := strings.Join(sum.Notes, "\n")
	for _, want := range []string{
		"no coverage data from crashed in test t1: crashed: crash() killed it (a Go program writes its counters when it exits normally, C and C++ at exit(), and a process killed by a signal or with its machine writes none)",
		"no coverage data from served in test t1: its services app, web ended without writing any: a Go program writes its counters when it exits normally",
		"no coverage data from plain in test t1: were the binaries built with -cover / --coverage?",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes\n%s\nwant %q", notes, want)
		}
	}
	for _, n := range sum.Notes {
		if strings.Contains(n, "crashed in test") && strings.Contains(n, "-cover") {
			t.Errorf("note %q blames the build of a machine that crashed", n)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "no coverage data from any machine: no coverage data from crashed in test t1: crashed: crash() killed it") {
		t.Errorf("error %v, want the machines' reasons", err)
	}
	noReport(t, dir)
}

// goTricky is Go whose counters cmd/cover places in every way it has
// (cases, selects, else if, labels, literals in and outside functions,
// methods of generic types, empty bodies): the source check must find
// each unit's bounds in the unchanged source.
const goTricky = `
var Hook = func(x int) int {
	if x > 1 {
		return x
	}
	return 0
}

type Box[T any] struct{ v T }

func (b *Box[T]) Get() T { return b.v }

type S struct{}

func (S) Value() int { return 1 }
func (*S) Ptr()      {}

func Empty() {}

func Tricky(xs []int, ch chan int) (n int) {
	defer func() { n++ }()
	for i, x := range xs {
		switch {
		case x > 10:
			n += i
		case x < 0:
			continue
		default:
			n--
		}
	}
	if n > 100 {
		n = 100
	} else if n < -100 {
		n = -100
	} else {
		n = 1
	}
	select {
	case v := <-ch:
		n += v
	default:
	}
	var a any = n
	switch a.(type) {
	case int:
		n++
	}
loop:
	for n < 3 {
		n++
		if n == 2 {
			break loop
		}
		goto loop
	}
	f := func() int { return n }
	return f() + (&Box[int]{3}).Get()
}

func _() {}
`

func TestMergeGoSourceUnchanged(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, goTricky)
	runGo(t, dir, "t1", "server", bin, "server")
	t.Chdir(src)
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sum.Notes {
		if strings.Contains(n, "not reported") {
			t.Errorf("the unchanged source was refused: %s", n)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, LCOVFile)); !strings.Contains(string(data), "FN:") || !strings.Contains(string(data), "lib/lib.go") {
		t.Errorf("lcov.info has no functions of lib.go:\n%s", data)
	}
}

// The trial's case: a function added above others after the build, not
// rebuilt. The counts would land on other lines and other functions (the
// new one reported as run, the ones that ran reported as not): the
// package is refused, named, and the rest of the report stands.
func TestMergeGoSourceChanged(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "t1", "server", bin, "server")
	runGo(t, dir, "t1", "client", bin, "client")
	edited := strings.Replace(goLib, "func Both() int {", "func Extra1() int {\n\tx := 1\n\tx++\n\treturn x\n}\n\nfunc Both() int {", 1)
	writeFiles(t, src, map[string]string{"lib/lib.go": edited})
	t.Chdir(src)
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(sum.Notes, "\n")
	for _, w := range []string{"Go package example.com/covdemo/lib of program example.com/covdemo (run on client in t1, server in t1) not reported: its source changed since the program was built",
		"function Extra1 (line 3) is not in the build", "rebuild it with -cover"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes\n%s\ndo not say %q", notes, w)
		}
	}
	if sum.Files != 1 {
		t.Errorf("the report has %d files, want main.go only", sum.Files)
	}
	if pages, _ := filepath.Glob(filepath.Join(dir, filesDir, "*.html")); len(pages) != 1 {
		t.Errorf("source pages %v, want main.go's only", pages)
	}
	for _, name := range []string{LCOVFile, CoberturaFile, filepath.Join(GoHTMLDir, goProfileFile), filepath.Join(MachineLCOVDir, "server.info")} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "lib.go") || strings.Contains(string(data), "Extra1") {
			t.Errorf("%s reports the changed package's file", name)
		}
		if name != filepath.Join(GoHTMLDir, goProfileFile) && !strings.Contains(string(data), "main.go") {
			t.Errorf("%s lost main.go, whose source did not change", name)
		}
	}
	// A line added inside the file's last function: every function is
	// where it was, but its counters' lines moved.
	writeFiles(t, src, map[string]string{"lib/lib.go": strings.Replace(goLib, `return "c" // client`, "x := 1\n\t_ = x\n\treturn \"c\" // client", 1)})
	sum, err = Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(sum.Notes, "\n"); !strings.Contains(notes, "Go package example.com/covdemo/lib of program") || !strings.Contains(notes, "function Call: the build counted") {
		t.Errorf("a line added inside Call: notes\n%s\ndo not refuse lib", notes)
	}
	// Every file of the program changed: nothing is left, and the merge
	// fails saying why.
	writeFiles(t, src, map[string]string{"main.go": strings.Replace(goMain, "func main() {", "func extra2() {}\n\nfunc main() {", 1)})
	_, err = Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err == nil || !strings.Contains(err.Error(), "nothing left to report") || !strings.Contains(err.Error(), "Go package example.com/covdemo ") {
		t.Errorf("merge of changed sources only: error %v, want nothing left, naming the packages", err)
	}
	noReport(t, dir)
}

// A C source edited after it was compiled, the program not rebuilt: the
// .gcda still matches the .gcno (gcov's stamp check passes), but its line
// numbers are the build's. gcov warns only when it finds the source from
// its own directory, which it does not here: vmlab compares the times.
func TestMergeCSourceChanged(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	source := filepath.Join(src, "demo.c")
	edited := strings.Replace(cSource, "static int both(void)", "static int extra1(void)\n{\n\treturn 2;\n}\n\nstatic int both(void)", 1)
	writeFiles(t, src, map[string]string{"demo.c": edited})
	notes, err := os.Stat(filepath.Join(src, "demo.gcno"))
	if err != nil {
		t.Fatal(err)
	}
	// Later than the notes file, whatever the file system's clock grain.
	later := notes.ModTime().Add(2 * time.Second)
	if err := os.Chtimes(source, later, later); err != nil {
		t.Fatal(err)
	}
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	want := "C source " + source + " not reported: it was modified after it was compiled"
	if err != nil {
		if !strings.Contains(err.Error(), "nothing left to report") || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want nothing left, naming %s", err, source)
		}
		noReport(t, dir)
		return
	}
	if !strings.Contains(strings.Join(sum.Notes, "\n"), want) {
		t.Errorf("notes %q do not say %q", sum.Notes, want)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, LCOVFile)); strings.Contains(string(data), "demo.c") {
		t.Errorf("lcov.info reports the edited source:\n%s", data)
	}
}
