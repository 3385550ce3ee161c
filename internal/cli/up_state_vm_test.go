package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestUpStateVM: `vmlab up -state DIR` keeps a machine's disk across two
// labs: a file written through vmlab shell in the first is there in the
// second, and the state directory is refused while a lab holds it.
func TestUpStateVM(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	shell := func(args ...string) (string, error) {
		out, err := vmlabCmd(t, bin, runtime, append([]string{"shell", "server", "--"}, args...)...).CombinedOutput()
		return string(out), err
	}
	down := func(u *upLab) {
		t.Helper()
		if out, err := vmlabCmd(t, bin, runtime, "down").CombinedOutput(); err != nil {
			t.Fatalf("vmlab down: %v: %s", err, out)
		}
		select {
		case err := <-u.exited:
			if err != nil {
				t.Fatalf("vmlab up after down: %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("vmlab up still runs 2 minutes after vmlab down")
		}
	}

	u := startUp(t, bin, runtime, "server: up in", "-state", state)
	if out, err := shell("sh", "-c", "echo kept-across-labs > /root/note && sync"); err != nil {
		t.Fatalf("write the note: %v: %s", err, out)
	}
	// A second lab on the same state directory is refused before it boots.
	out, err := vmlabCmd(t, bin, runtime, "up", "-lab", "other", "-state", state, "testdata/up.star").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage || !strings.Contains(string(out), state) {
		t.Errorf("a second up on %s: got %v: %s; want exit %d naming the directory", state, err, out, exitUsage)
	}
	down(u)
	if _, err := os.Stat(filepath.Join(state, "server.img")); err != nil {
		t.Fatalf("the state directory lacks the machine's image: %v", err)
	}

	u = startUp(t, bin, runtime, "server: up in", "-state", state)
	got, err := shell("cat", "/root/note")
	if err != nil || strings.TrimSpace(got) != "kept-across-labs" {
		t.Errorf("the second lab's /root/note: got %q, %v; want kept-across-labs", got, err)
	}
	down(u)
}
