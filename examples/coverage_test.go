package examples

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/script"
)

// TestCoverageUnbuilt: coverage.star without its programs built fails to
// load, at a line that says to run coverage/build.sh.
func TestCoverageUnbuilt(t *testing.T) {
	src, err := os.ReadFile("coverage.star")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "coverage.star") // no coverage/bin beside it
	_, err = script.Load(file, src)
	if err == nil || !strings.Contains(err.Error(), "coverage/bin: no such host directory") {
		t.Fatalf("got %v, want the missing coverage/bin named", err)
	}
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), file), ":%d:", &line); scanErr != nil {
		t.Fatalf("the error %q names no line of %s: %v", err, file, scanErr)
	}
	if lines := strings.Split(string(src), "\n"); line < 1 || line > len(lines) || !strings.Contains(lines[line-1], "run examples/coverage/build.sh") {
		t.Errorf("the error points at line %d, which does not say to run examples/coverage/build.sh", line)
	}
}

// TestCoverage builds the coverage example's programs with
// coverage/build.sh, as a user does, runs coverage.star with `vmlab run
// -coverage`, and checks in the merged report which machine ran what: the
// servers' code only on server, the clients' only on client, the shared
// code on both, and the missing key's error path on each side.
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

	// The merge found the sources through go list from here, as Load does.
	m, err := coverage.Load(t.Context(), cov, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	kv, tally := fileEnding(t, m, "examples/coverage/kv/main.go"), fileEnding(t, m, "examples/coverage/tally/tally.c")
	for _, c := range []struct {
		file  *coverage.File
		funcs map[string]string
	}{
		{kv, map[string]string{"serve": "server", "(*store).handle": "server", "decode": "server",
			"call": "client", "request.encode": "client", "main": "both", "run": "both"}},
		{tally, map[string]string{"serve": "server", "on_term": "server",
			"send_text": "client", "count_words": "both", "main": "both"}},
	} {
		for name, want := range c.funcs {
			if got := ranOn(funcNamed(t, c.file, name).Count); got != want {
				t.Errorf("%s: function %s ran on %s, want %s", filepath.Base(c.file.Name), name, got, want)
			}
		}
	}
	for _, c := range []struct {
		file       *coverage.File
		text, want string
	}{
		{kv, `fmt.Fprintf(c, "error no key %s\n", r.key)`, "server"}, // the missing key, answered
		{kv, `return "", errors.New(msg)`, "client"},                 // and reported
		{kv, `return request{}, fmt.Errorf("bad request %q", line)`, "none"},
		{kv, `s.m[r.key] = r.value`, "server"},
		{kv, `return errors.New("usage:`, "none"},
		{tally, `fputs(buf, stdout);`, "client"},
		{tally, `sendto(fd, out, len, 0, (struct sockaddr *)&from, fromlen);`, "server"},
		{tally, `fprintf(stderr, "tally: server counted %s", buf);`, "none"},
	} {
		if got := ranOn(lineWith(t, c.file, c.text).Count); got != c.want {
			t.Errorf("%s: line %q ran on %s, want %s", filepath.Base(c.file.Name), c.text, got, c.want)
		}
	}

	// lcov.info, what CI reads: both sources at their paths on the host,
	// every function above entered.
	lcov, err := os.ReadFile(filepath.Join(cov, coverage.LCOVFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SF:" + kv.Source, "SF:" + tally.Source, "FNDA:1,(*store).handle", "FNDA:1,send_text", "FNDA:2,count_words"} {
		if !strings.Contains(string(lcov), want+"\n") {
			t.Errorf("lcov.info lacks %q", want)
		}
	}
}

// ranOn says where a line or function ran, from its Count: "server",
// "client", "both" or "none".
func ranOn(count func(machine string) (int64, bool)) string {
	s, _ := count("server")
	c, _ := count("client")
	switch {
	case s > 0 && c > 0:
		return "both"
	case s > 0:
		return "server"
	case c > 0:
		return "client"
	}
	return "none"
}

func fileEnding(t *testing.T, m *coverage.Model, suffix string) *coverage.File {
	t.Helper()
	for _, f := range m.Files {
		if strings.HasSuffix(f.Name, suffix) {
			if f.Source == "" {
				t.Fatalf("%s: the merge did not find its source", f.Name)
			}
			return f
		}
	}
	t.Fatalf("no file ending in %s in the report", suffix)
	return nil
}

func funcNamed(t *testing.T, f *coverage.File, name string) *coverage.Func {
	t.Helper()
	for _, fn := range f.Funcs {
		if fn.Name == name {
			return fn
		}
	}
	t.Fatalf("%s: no function %s", f.Name, name)
	return nil
}

// lineWith is the instrumented line of f whose source holds text.
func lineWith(t *testing.T, f *coverage.File, text string) *coverage.Line {
	t.Helper()
	src, err := os.Open(f.Source)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sc := bufio.NewScanner(src)
	for n := 1; sc.Scan(); n++ {
		if !strings.Contains(sc.Text(), text) {
			continue
		}
		for _, l := range f.Lines {
			if l.Number == n {
				return l
			}
		}
		t.Fatalf("%s:%d (%q) is not an instrumented line", f.Source, n, text)
	}
	t.Fatalf("%s: no line holds %q", f.Source, text)
	return nil
}
