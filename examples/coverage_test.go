package examples

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCoverage builds the coverage example's programs with
// coverage/build.sh, as a user does, runs coverage.star with `vmlab run
// -coverage`, and checks in the merged report's per-machine LCOV
// (lcov/MACHINE.info) which machine ran what: the servers' code only on
// server, the clients' only on client, the shared code on both, and the
// missing key's error path on each side.
func TestCoverage(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed (apt-get install gcc): the example has a C program")
	}
	build := exec.Command("sh", filepath.Join("coverage", "build.sh"))
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("coverage/build.sh: %v\n%s", err, b)
	}
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// Relative, as a user names it (-coverage cov/).
	cov, err := filepath.Rel(wd, filepath.Join(dir, "cov"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := vmlabRun(t, filepath.Join(dir, "out"), "-coverage", cov, "coverage.star")
	t.Logf("vmlab run -coverage %s coverage.star:\n%s", cov, b)
	if err != nil {
		t.Fatalf("vmlab run: %v", err)
	}
	for _, want := range []string{"1 passed", "coverage: 2 source files, 2 machines", "all machines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the run's output lacks %q", want)
		}
	}
	if strings.Contains(string(b), "PARTIAL") {
		t.Errorf("a machine's data is partial: the services did not stop cleanly")
	}

	server, client := readLCOV(t, filepath.Join(cov, "lcov", "server.info")), readLCOV(t, filepath.Join(cov, "lcov", "client.info"))
	kv, tally := filepath.Join(wd, "coverage", "kv", "main.go"), filepath.Join(wd, "coverage", "tally", "tally.c")
	for _, c := range []struct {
		source string
		funcs  map[string]string
	}{
		{kv, map[string]string{"serve": "server", "(*store).handle": "server", "decode": "server",
			"call": "client", "request.encode": "client", "main": "both", "run": "both"}},
		{tally, map[string]string{"serve": "server", "on_term": "server",
			"send_text": "client", "count_words": "both", "main": "both"}},
	} {
		for name, want := range c.funcs {
			if got := ranOn(server.funcs(t, c.source)[name], client.funcs(t, c.source)[name]); got != want {
				t.Errorf("%s: function %s ran on %s, want %s", filepath.Base(c.source), name, got, want)
			}
		}
	}
	for _, c := range []struct {
		source, text, want string
	}{
		{kv, `fmt.Fprintf(c, "error no key %s\n", r.key)`, "server"}, // the missing key, answered
		{kv, `return "", errors.New(msg)`, "client"},                 // and reported
		{kv, `s.m[r.key] = r.value`, "server"},
		{kv, `return request{}, fmt.Errorf("bad request %q", line)`, "none"},
		{kv, `return errors.New("usage:`, "none"},
		{tally, `fputs(buf, stdout);`, "client"},
		{tally, `sendto(fd, out, len, 0, (struct sockaddr *)&from, fromlen);`, "server"},
		{tally, `fprintf(stderr, "tally: server counted %s", buf);`, "none"},
	} {
		n := lineWith(t, c.source, c.text)
		s, onServer := server.lines(t, c.source)[n]
		cl, onClient := client.lines(t, c.source)[n]
		if !onServer && !onClient {
			t.Errorf("%s:%d (%q) is not an instrumented line", filepath.Base(c.source), n, c.text)
		} else if got := ranOn(s, cl); got != c.want {
			t.Errorf("%s:%d (%q) ran on %s, want %s", filepath.Base(c.source), n, c.text, got, c.want)
		}
	}

	// lcov.info merges the machines: a function is entered when either
	// machine entered it.
	all := readLCOV(t, filepath.Join(cov, "lcov.info"))
	if got := all.funcs(t, kv)["(*store).handle"] + all.funcs(t, kv)["call"] + all.funcs(t, tally)["send_text"]; got != 3 {
		t.Errorf("lcov.info: handle, call and send_text entered %d times in all, want 3", got)
	}
}

// TestCoverageUnbuilt: coverage.star without its programs built fails to
// load, at a line that says to run coverage/build.sh.
func TestCoverageUnbuilt(t *testing.T) {
	src, err := os.ReadFile("coverage.star")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "coverage.star") // no coverage/bin beside it
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := vmlabRun(t, filepath.Join(dir, "out"), "-coverage", filepath.Join(dir, "cov"), file)
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 || !strings.Contains(string(b), "coverage/bin: no such host directory") {
		t.Fatalf("got %v, want exit 2 naming the missing coverage/bin:\n%s", err, b)
	}
	_, after, _ := strings.Cut(string(b), file+":")
	var line int
	if _, err := fmt.Sscanf(after, "%d:", &line); err != nil {
		t.Fatalf("the error names no line of %s (%v):\n%s", file, err, b)
	}
	if lines := strings.Split(string(src), "\n"); line < 1 || line > len(lines) || !strings.Contains(lines[line-1], "run examples/coverage/build.sh") {
		t.Errorf("the error points at line %d, which does not say to run examples/coverage/build.sh", line)
	}
	if _, err := os.Stat(filepath.Join(dir, "cov")); err == nil {
		t.Errorf("the coverage directory was made for a file that did not load")
	}
}

// lcov is an LCOV tracefile: per source (SF), each function's entries
// (FNDA) and each line's count (DA).
type lcov map[string]*lcovFile

type lcovFile struct {
	fn   map[string]int64
	line map[int]int64
}

func readLCOV(t *testing.T, path string) lcov {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := lcov{}
	var cur *lcovFile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, _ := strings.Cut(sc.Text(), ":")
		switch key {
		case "SF":
			cur = &lcovFile{fn: map[string]int64{}, line: map[int]int64{}}
			out[v] = cur
		case "FNDA":
			n, name, _ := strings.Cut(v, ",")
			cur.fn[name], _ = strconv.ParseInt(n, 10, 64)
		case "DA":
			ln, n, _ := strings.Cut(v, ",")
			number, _ := strconv.Atoi(ln)
			cur.line[number], _ = strconv.ParseInt(n, 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (l lcov) file(t *testing.T, source string) *lcovFile {
	t.Helper()
	f := l[source]
	if f == nil {
		t.Fatalf("no record of %s (the report's sources are found from the module)", source)
	}
	return f
}

func (l lcov) funcs(t *testing.T, source string) map[string]int64 { return l.file(t, source).fn }
func (l lcov) lines(t *testing.T, source string) map[int]int64    { return l.file(t, source).line }

// ranOn says where something with these counts on server and client ran:
// "server", "client", "both" or "none".
func ranOn(server, client int64) string {
	switch {
	case server > 0 && client > 0:
		return "both"
	case server > 0:
		return "server"
	case client > 0:
		return "client"
	}
	return "none"
}

// lineWith is the number of source's line that holds text.
func lineWith(t *testing.T, source, text string) int {
	t.Helper()
	f, err := os.Open(source)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), text) {
			return n
		}
	}
	t.Fatalf("%s: no line holds %q", source, text)
	return 0
}
