package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestDownWhileBooting: vmlab down while the machines boot cuts the boots
// short and the lab stops at once, exit 0 (before: the boots ran on to
// their timeout, minutes under TCG, with the client waiting). The QEMU
// here never connects, as a boot that hangs.
func TestDownWhileBooting(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime := t.TempDir()
	qemu := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(qemu, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	u := vmlabCmd(t, bin, runtime, "up", "-qemu", qemu, "-accel", "tcg", "testdata/up.star")
	u.Env = append(u.Env, "VMLAB_AGENT="+bin)
	wait, exited := startedLines(t, u)
	wait("server: booting")
	down := vmlabCmd(t, bin, runtime, "down")
	downDone := make(chan error, 1)
	go func() {
		out, err := down.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		downDone <- err
	}()
	select {
	case err := <-downDone:
		if err != nil {
			t.Fatalf("vmlab down: %v", err)
		}
	case <-time.After(time.Minute):
		down.Process.Kill()
		t.Fatal("vmlab down still waits a minute later, the machines booting")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("vmlab up after a down during the boot: %v, want exit 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("vmlab up still runs a minute after vmlab down, its machines booting")
	}
}
