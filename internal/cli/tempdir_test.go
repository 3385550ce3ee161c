package cli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestKilledRunSwept kills `vmlab run` with SIGKILL during a test, checks
// what it left in $TMPDIR, and that the next run removes it.
func TestKilledRunSwept(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two VMs")
	}
	bin := vmtest.Agent(t)
	tmp := t.TempDir()
	// The labs' sockets go elsewhere: the runtime directory is the
	// user's, kept across runs (a killed run's socket is removed by the
	// next command that finds it).
	env := append(os.Environ(), "TMPDIR="+tmp, "VMLAB_AGENT="+bin, "XDG_RUNTIME_DIR="+t.TempDir())
	cmd, r := startHanging(t, env, bin)
	go io.Copy(io.Discard, r)
	qemu := childPids(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	for _, pid := range qemu {
		gone(pid, 10*time.Second)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "vmlab-*"))
	t.Logf("left by the killed run: %v", left)
	if len(left) != 1 || !strings.HasPrefix(filepath.Base(left[0]), "vmlab-run-") {
		t.Fatalf("got %v, want the killed run's output directory", left)
	}

	next := exec.Command(bin, "run", "testdata/pass.star")
	next.Env = env
	if out, err := next.CombinedOutput(); err != nil {
		t.Fatalf("next run: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "vmlab-*")); len(left) > 0 {
		t.Errorf("after the next run: got %v, want nothing", left)
	}
}
