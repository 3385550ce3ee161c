package vmlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
