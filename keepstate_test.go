package vmlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestKeepState builds labs with KeepState (nothing boots: machines boot
// on their first command): a new directory records the test, and a
// directory of another test fails the test before anything is made, naming
// what to do.
func TestKeepState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	errs, l := declare(t, "", func(l *Lab) {
		KeepState(dir).set(l)
		l.Machine("server")
		l.start(l.t)
	})
	if len(errs) > 0 {
		t.Fatalf("got %v, want no problem", errs)
	}
	l.built.Close()
	b, err := os.ReadFile(filepath.Join(dir, "vmlab-state.json"))
	want, _ := filepath.Abs(t.Name())
	if err != nil || !strings.Contains(string(b), `"file": "`+want+`"`) || !strings.Contains(string(b), `"server"`) {
		t.Errorf("the state directory's metadata: got %s, %v; want this test (%s) and its machine", b, err, want)
	}

	other := t.TempDir()
	s, err := machine.ApplyState([]machine.Config{{Machine: spec.New("server")}}, other, "TestSomethingElse")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	errs, _ = declare(t, "", func(l *Lab) {
		KeepState(other).set(l)
		l.Machine("server")
		l.start(l.t)
	})
	if len(errs) != 1 || !strings.Contains(errs[0], "vmlab: KeepState: state directory "+other+" holds the machines of") {
		t.Errorf("got %q, want the test failed naming the other test's directory", errs)
	}
}

// TestCoverageOption builds a lab with Coverage (nothing boots): each
// machine collects into DIR/raw/TEST/MACHINE; a directory that cannot be
// written, or that holds this test's data already, fails the test before
// anything boots, naming it.
func TestCoverageOption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cov")
	errs, l := declare(t, "", func(l *Lab) {
		Coverage(dir).set(l)
		l.Machine("server")
		l.start(l.t)
	})
	if len(errs) > 0 {
		t.Fatalf("got %v, want no problem", errs)
	}
	defer l.built.Close()
	if _, err := os.Stat(filepath.Join(dir, "raw")); err != nil {
		t.Errorf("the coverage directory was not prepared: %v", err)
	}

	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	earlier := filepath.Join(t.TempDir(), "cov")
	os.MkdirAll(filepath.Join(earlier, "raw", "TestCoverageOption", "server"), 0o700)
	for _, tt := range []struct{ name, dir, want string }{
		{"not a directory", notDir, "vmlab: Coverage: create the coverage directory " + notDir},
		{"earlier data", earlier, "vmlab: Coverage: coverage directory " + earlier + ": " + filepath.Join(earlier, "raw", "TestCoverageOption") + " holds an earlier run's data"},
	} {
		errs, l := declare(t, "", func(l *Lab) {
			Coverage(tt.dir).set(l)
			l.Machine("server")
			l.start(l.t)
		})
		if len(errs) != 1 || !strings.Contains(errs[0], tt.want) || l.built != nil {
			t.Errorf("%s: got %q, want the test failed before the lab was made with %q", tt.name, errs, tt.want)
		}
	}
}

// TestMergeCoverage: the Go API's merge is the process's: a directory
// where no lab of it collected is an error saying so; one where its
// machines left no data too; and nothing false is reported.
func TestMergeCoverage(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(coverage.MachineDir(dir, "TestX", "server"), 0o700)
	os.WriteFile(filepath.Join(coverage.MachineDir(dir, "TestX", "server"), coverage.StateFile), []byte(`{"test":"TestX","machine":"server"}`), 0o600)
	sum, err := MergeCoverage(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "no lab of this process collected coverage there") || sum != "" {
		t.Errorf("got %q, %v; want no summary and an error saying no lab collected there", sum, err)
	}
	coverTests.add(dir, "TestX") // as a lab made with Coverage(dir) in TestX
	sum, err = MergeCoverage(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), "no coverage data") || sum != "" {
		t.Errorf("got %q, %v; want no summary and an error saying there is no coverage data", sum, err)
	}
}
