package coverage

import (
	"bufio"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// want is which machines run a marked line.
var want = map[string][]string{
	"both":   {"client", "server"},
	"server": {"server"},
	"client": {"client"},
	"none":   nil,
}

// checkMarked checks every marked line of text in f against want, in the
// model and in the lcov and Cobertura counts.
func checkMarked(t *testing.T, m *Model, f *File, text string, lcov map[string]map[int]int64, cob map[string]map[int]int64) {
	t.Helper()
	for marker, on := range want {
		lines := marked(text, marker)
		if len(lines) == 0 && marker != "none" {
			t.Fatalf("%s: no line marked %q", f.Name, marker)
		}
		for _, n := range lines {
			l := lineNumbered(f, n)
			if l == nil {
				t.Errorf("%s:%d (%s): not instrumented in the model", f.Name, n, marker)
				continue
			}
			if got := strings.Join(m.RanOn(l), ","); got != strings.Join(on, ",") {
				t.Errorf("%s:%d (%s): ran on %q, want %q", f.Name, n, marker, got, strings.Join(on, ","))
			}
			total, _ := l.Count("")
			if got, ok := lcov[f.path()][n]; !ok || got != total {
				t.Errorf("%s:%d (%s): lcov DA count %d (present %v), want %d", f.Name, n, marker, got, ok, total)
			}
			if got, ok := cob[f.path()][n]; !ok || got != total {
				t.Errorf("%s:%d (%s): cobertura hits %d (present %v), want %d", f.Name, n, marker, got, ok, total)
			}
			if (total > 0) != (len(on) > 0) {
				t.Errorf("%s:%d (%s): merged count %d, want it run on %v", f.Name, n, marker, total, on)
			}
		}
	}
}

// readLCOV reads the DA records of an lcov tracefile: SF → line → count.
func readLCOV(t *testing.T, path string) map[string]map[int]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[int]int64{}
	var sf string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "SF:"); ok {
			sf = v
			out[sf] = map[int]int64{}
		}
		if v, ok := strings.CutPrefix(line, "DA:"); ok {
			n, c, _ := strings.Cut(v, ",")
			ln, _ := strconv.Atoi(n)
			cnt, _ := strconv.ParseInt(c, 10, 64)
			out[sf][ln] = cnt
		}
	}
	return out
}

// readCobertura reads the class lines of a Cobertura report: source path
// → line → hits.
func readCobertura(t *testing.T, path string) map[string]map[int]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sources []string `xml:"sources>source"`
		Classes []struct {
			Filename string `xml:"filename,attr"`
			Lines    []struct {
				Number int   `xml:"number,attr"`
				Hits   int64 `xml:"hits,attr"`
			} `xml:"lines>line"`
		} `xml:"packages>package>classes>class"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	out := map[string]map[int]int64{}
	for _, c := range doc.Classes {
		name := c.Filename
		if len(doc.Sources) > 0 && !filepath.IsAbs(name) {
			name = filepath.Join(doc.Sources[0], name)
		}
		out[name] = map[int]int64{}
		for _, l := range c.Lines {
			out[name][l.Number] = l.Hits
		}
	}
	return out
}

func TestMergeGoServerAndClient(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "t1", "server", bin, "server")
	runGo(t, dir, "t1", "client", bin, "client")
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	writeState(t, dir, State{Test: "t1", Machine: "client"})
	t.Chdir(src) // go list finds the sources from the module, as vmlab run does from the user's

	start := time.Now()
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("merge took %v\n%s", time.Since(start), sum)

	runs, err := scanRuns(dir, testsIn(dir))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := read(context.Background(), runs, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	lcov := readLCOV(t, filepath.Join(dir, LCOVFile))
	cob := readCobertura(t, filepath.Join(dir, CoberturaFile))
	for name, text := range map[string]string{"lib/lib.go": goLib, "covdemo/main.go": goMain} {
		f := fileNamed(t, m, name)
		if f.Source == "" {
			t.Fatalf("%s: source not found", f.Name)
		}
		checkMarked(t, m, f, text, lcov, cob)
	}
	lib := fileNamed(t, m, "lib/lib.go")
	var names []string
	for _, fn := range lib.Funcs {
		names = append(names, fn.Name)
	}
	if got := strings.Join(names, " "); got != "Both Serve Call" {
		t.Errorf("functions of lib.go: %q, want %q", got, "Both Serve Call")
	}
	checkSummary(t, sum, []string{"client", "server"})
	checkHTML(t, dir, "lib.go", []string{"only server", "only client", "both"})
	for _, p := range []string{"go/index.html", "go/profile.txt"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("go tool cover's output: %v", err)
		}
	}
}

func TestMergeCServerAndClient(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	runC(t, dir, "t1", "client", bin, "client")
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	writeState(t, dir, State{Test: "t1", Machine: "client"})
	// A page of an earlier merge that had more files.
	writeFiles(t, dir, map[string]string{filesDir + "/f9.html": "stale"})

	start := time.Now()
	sum, err := Merge(context.Background(), dir, testsIn(dir), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("merge took %v\n%s", time.Since(start), sum)
	if _, err := os.Stat(filepath.Join(dir, filesDir, "f9.html")); err == nil {
		t.Error("an earlier merge's page is still there")
	}
	runs, _ := scanRuns(dir, testsIn(dir))
	m, _, err := read(context.Background(), runs, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	f := fileNamed(t, m, "/demo.c")
	if f.Source != filepath.Join(src, "demo.c") {
		t.Errorf("source of demo.c: %q, want %q", f.Source, filepath.Join(src, "demo.c"))
	}
	checkMarked(t, m, f, cSource, readLCOV(t, filepath.Join(dir, LCOVFile)), readCobertura(t, filepath.Join(dir, CoberturaFile)))
	calls := map[string]string{}
	for _, fn := range f.Funcs {
		s, _ := fn.Count("server")
		c, _ := fn.Count("client")
		calls[fn.Name] = strconv.FormatInt(s, 10) + "/" + strconv.FormatInt(c, 10)
	}
	for name, want := range map[string]string{"both": "1/1", "serve": "1/0", "call": "0/1", "main": "1/1"} {
		if calls[name] != want {
			t.Errorf("calls of %s on server/client: %q, want %q", name, calls[name], want)
		}
	}
	checkSummary(t, sum, []string{"client", "server"})
	checkHTML(t, dir, "demo.c", []string{"only server", "only client", "both"})
}

func checkSummary(t *testing.T, sum Summary, machines []string) {
	t.Helper()
	var got []string
	for _, m := range sum.Machines {
		got = append(got, m.Name)
		if m.Covered == 0 || m.Covered >= m.Lines {
			t.Errorf("machine %s: %d of %d lines covered, want some but not all", m.Name, m.Covered, m.Lines)
		}
		if m.Covered >= sum.Total.Covered {
			t.Errorf("machine %s covered %d lines, all machines %d: want fewer on one machine", m.Name, m.Covered, sum.Total.Covered)
		}
	}
	if strings.Join(got, ",") != strings.Join(machines, ",") {
		t.Errorf("summary machines %v, want %v", got, machines)
	}
	s := sum.String()
	for _, w := range append(machines, "all machines", filepath.Join(sum.Dir, IndexFile)) {
		if !strings.Contains(s, w) {
			t.Errorf("summary does not mention %q:\n%s", w, s)
		}
	}
	data, err := os.ReadFile(filepath.Join(sum.Dir, SummaryFile))
	if err != nil || string(data) != s {
		t.Errorf("summary.txt: %q, %v; want the summary", data, err)
	}
}

// checkHTML checks that the index links the file's page and the page
// marks lines with each of markers.
func checkHTML(t *testing.T, dir, file string, markers []string) {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, filesDir, "*.html"))
	for _, p := range pages {
		data, _ := os.ReadFile(p)
		if !strings.Contains(string(data), file+"</code></h1>") {
			continue
		}
		if !strings.Contains(string(index), filesDir+"/"+filepath.Base(p)) {
			t.Errorf("index.html does not link %s", p)
		}
		for _, mk := range markers {
			if !strings.Contains(string(data), `<td class="on">`+mk+`</td>`) {
				t.Errorf("%s's page has no line marked %q", file, mk)
			}
		}
		return
	}
	t.Errorf("no page for %s among %v", file, pages)
}
