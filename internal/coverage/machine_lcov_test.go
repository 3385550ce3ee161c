package coverage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLCOVPerMachine: a machine's tracefile has its own counts, and only
// the files, functions and lines it had data for.
func TestLCOVPerMachine(t *testing.T) {
	m := sample()
	for _, tt := range []struct {
		machine string
		want    string
	}{
		{"server", "TN:\nSF:/src/a.c\nFN:1,f\nFNDA:1,f\nFNF:1\nFNH:1\nDA:1,2\nDA:2,5\nDA:3,0\nDA:4,0\nLF:4\nLH:2\nend_of_record\n" +
			"TN:\nSF:example.com/x/b.go\nFNF:0\nFNH:0\nDA:10,4\nDA:11,0\nLF:2\nLH:1\nend_of_record\n"},
		// The client ran no binary of b.go: no record for it.
		{"client", "TN:\nSF:/src/a.c\nFN:1,f\nFNDA:1,f\nFNF:1\nFNH:1\nDA:1,3\nDA:2,0\nDA:3,1\nDA:4,0\nLF:4\nLH:2\nend_of_record\n"},
	} {
		if got := string(writeLCOV(m.Files, tt.machine)); got != tt.want {
			t.Errorf("%s.info:\n%s\nwant\n%s", tt.machine, got, tt.want)
		}
	}
}

// TestMergeMachineLCOV: the merge writes lcov/MACHINE.info for each
// machine with data, and removes an earlier merge's of a machine gone.
func TestMergeMachineLCOV(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildC(t, src, cSource)
	runC(t, dir, "t1", "server", bin, "server")
	runC(t, dir, "t1", "client", bin, "client")
	writeFiles(t, dir, map[string]string{MachineLCOVDir + "/gone.info": "stale"})
	if _, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf); err != nil {
		t.Fatal(err)
	}
	infos, _ := filepath.Glob(filepath.Join(dir, MachineLCOVDir, "*.info"))
	if got := strings.Join(infos, " "); got != filepath.Join(dir, MachineLCOVDir, "client.info")+" "+filepath.Join(dir, MachineLCOVDir, "server.info") {
		t.Errorf("got %s; want client.info and server.info", got)
	}
	for machine, want := range map[string][]string{
		"server": {"FNDA:1,serve\n", "FNDA:0,call\n", "FNDA:1,both\n"},
		"client": {"FNDA:0,serve\n", "FNDA:1,call\n", "FNDA:1,both\n"},
	} {
		data, err := os.ReadFile(filepath.Join(dir, MachineLCOVDir, machine+".info"))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(data), w) {
				t.Errorf("%s.info lacks %q:\n%s", machine, w, data)
			}
		}
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
	if _, err := Merge(context.Background(), "cov", []string{"t1"}, t.Logf); err != nil {
		t.Fatal(err)
	}
	if lcov, err := os.ReadFile(filepath.Join(dir, LCOVFile)); err != nil || !strings.Contains(string(lcov), "FNDA:1,serve\n") {
		t.Errorf("lcov.info: %v; want serve entered once in it:\n%s", err, lcov)
	}
}
