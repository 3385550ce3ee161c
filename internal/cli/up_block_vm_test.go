package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestUpBlockOnTerminal: `vmlab up` on a terminal keeps a live line per
// machine (booting, then up with its time), prints the lab's summary and
// where -state keeps the disks above it, shows the machine stopped when
// vmlab down stops the lab, and leaves no block behind. The plain "up in"
// line is not printed there. One boot.
func TestUpBlockOnTerminal(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	cmd := vmlabCmd(t, bin, runtime, "up", "-state", state, "testdata/up.star")
	cmd.Env = append(cmd.Env, "VMLAB_AGENT="+bin, "TERM=xterm", "NO_COLOR=")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 24, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, re := range []string{
		`server +booting \d+\.\ds`,
		`server +up +eth1 192\.168\.1\.1/24`, // the summary
		`disks kept in ` + regexp.QuoteMeta(state),
		`lab up is up: vmlab shell MACHINE.*Ctrl-C stops it\s+server +up \d+\.\ds`, // the block, under it
	} {
		if _, err := sc.Expect(re, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sc.Expect(`server +up \d+\.\ds`, 10*time.Second); err != nil {
		t.Fatalf("the block's clock does not move: %v", err) // a redraw with a later time
	}
	out, err := vmlabCmd(t, bin, runtime, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("vmlab down: %v: %s", err, out)
	}
	if _, err := sc.Expect(`server +stopped \d+\.\ds`, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := sc.Wait(); err != nil {
		t.Errorf("vmlab up after vmlab down: %v, want exit 0\n%q", err, sc.Text())
	}
	text := sc.Text()
	if strings.Contains(text, "up in") || strings.Contains(text, "server: booting") {
		t.Errorf("the terminal shows the plain boot lines:\n%q", text)
	}
	if !strings.HasSuffix(text, "\x1b[J") {
		t.Errorf("the block is left on the screen at the end:\n%q", text[max(0, len(text)-300):])
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("the state directory: %v", err)
	}
}

// TestUpBlockFailedBoot: a machine that does not boot (its QEMU exits at
// once) shows as failed on the block with the first line of why, and the
// whole error is printed above it, naming the machine once; when no
// machine came up, vmlab up says so and exits 1 rather than serving a lab
// of nothing (before: "lab up is up", waiting for vmlab down).
func TestUpBlockFailedBoot(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime := t.TempDir()
	cmd := vmlabCmd(t, bin, runtime, "up", "-qemu", "/bin/false", "-accel", "tcg", "testdata/up.star")
	cmd.Env = append(cmd.Env, "VMLAB_AGENT="+bin, "TERM=xterm", "NO_COLOR=")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 24, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, re := range []string{`vmlab: server: failed to boot: start: `, `server +failed \d+\.\ds: \S`, `no machine of lab up came up: stopping it`} {
		if _, err := sc.Expect(re, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Wait(); err == nil || sc.Cmd.ProcessState.ExitCode() != exitFail {
		t.Errorf("vmlab up with a failed boot: got %v, want exit %d\n%q", err, exitFail, sc.Text())
	}
	if strings.Contains(sc.Text(), "lab up is up") {
		t.Errorf("vmlab up says a lab of failed machines is up:\n%q", sc.Text())
	}
}
