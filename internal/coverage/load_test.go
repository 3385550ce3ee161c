package coverage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoad: Load gives the model Merge reports from, each machine's
// counts apart, and writes nothing in the directory.
func TestLoad(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	runC(t, dir, "t1", "client", bin, "client")
	// A machine whose programs were not instrumented: no column.
	if err := os.MkdirAll(MachineDir(dir, "t1", "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := Load(context.Background(), dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Machines, ","); got != "client,server" {
		t.Errorf("machines %q, want client,server (plain left no data)", got)
	}
	f := fileNamed(t, m, "/demo.c")
	for name, want := range map[string][2]bool{"serve": {true, false}, "call": {false, true}, "both": {true, true}} {
		var got [2]bool
		for _, fn := range f.Funcs {
			if fn.Name == name {
				s, _ := fn.Count("server")
				c, _ := fn.Count("client")
				got = [2]bool{s > 0, c > 0}
			}
		}
		if got != want {
			t.Errorf("%s ran on server, client: %v, want %v", name, got, want)
		}
	}
	for _, f := range []string{IndexFile, LCOVFile, CoberturaFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("Load wrote %s", f)
		}
	}
}

// TestLoadNoData: a directory whose machines left no data is an error
// saying what to build with.
func TestLoadNoData(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(MachineDir(dir, "t1", "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "-cover / --coverage") {
		t.Errorf("got %v, want the error to say what to build with", err)
	}
}

// TestMergeRelativeDir: a coverage directory named by a relative path
// (vmlab run -coverage cov/) is read as well as an absolute one. gcov read
// the C data through a link relative to its scratch directory, found
// nothing there and counted every line 0, which the report then claimed.
func TestMergeRelativeDir(t *testing.T) {
	src, parent := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	dir := filepath.Join(parent, "cov")
	runC(t, dir, "t1", "server", bin, "server")
	t.Chdir(parent)
	if _, err := Merge(context.Background(), "cov", t.Logf); err != nil {
		t.Fatal(err)
	}
	m, err := Load(context.Background(), "cov", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range fileNamed(t, m, "/demo.c").Funcs {
		if n, _ := fn.Count("server"); fn.Name == "serve" && n != 1 {
			t.Errorf("serve ran %d times on server, want 1", n)
		}
	}
	if lcov, err := os.ReadFile(filepath.Join(dir, LCOVFile)); err != nil || !strings.Contains(string(lcov), "FNDA:1,serve\n") {
		t.Errorf("lcov.info: %v; want serve entered once in it:\n%s", err, lcov)
	}
}
