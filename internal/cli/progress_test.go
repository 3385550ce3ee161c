package cli

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestProgressOnTerminal: `vmlab run` on a terminal shows its machine
// booting, then up, then stopped at the test's end, on the live block,
// which is gone for the result and the summary; the plain "booted in" line
// is not printed there.
func TestProgressOnTerminal(t *testing.T) {
	bin := vmtest.Agent(t) // the static build is the whole vmlab
	cmd := exec.Command(bin, "run", "../../examples/minimal.star")
	cmd.Env = append(os.Environ(), "VMLAB_AGENT="+bin, "TERM=xterm", "NO_COLOR=")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, re := range []string{`vm +booting \d+\.\ds`, `vm +up \d+\.\ds`, `vm +stopped \d+\.\ds`, `\x1b\[J(?:\x1b\[\d+m)?PASS`, `\n1 passed, 0 failed\r?\n`} {
		if _, err := sc.Expect(re, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Wait(); err != nil {
		t.Fatalf("vmlab run: %v\n%s", err, sc.Text())
	}
	if text := sc.Text(); strings.Contains(text, "booted in") {
		t.Errorf("the terminal shows the plain boot line:\n%q", text)
	}
}
