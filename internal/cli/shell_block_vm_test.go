package cli

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestShellInteractKeepsScreen: under vmlab run on a terminal, the live
// block does not redraw while shell_interact's shell has the terminal:
// the banner, what is typed and the shell's output stay where the shell
// put them, and the block comes back once the shell is left. (Before, the
// block's clock redrew it five times a second over the shell.)
func TestShellInteractKeepsScreen(t *testing.T) {
	bin := vmtest.Agent(t)
	dir := t.TempDir()
	file := dir + "/interact.star"
	src := "server = machine()\n\ndef test():\n    server.shell_interact()\n    server.succeed(\"true\")\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", file)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "VMLAB_AGENT="+bin, "TERM=xterm", "NO_COLOR=")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Expect(`server +booting \d+\.\ds`, 120*time.Second); err != nil {
		t.Fatal(err) // the block is there before the shell
	}
	if _, err := sc.Expect(`vmlab: a shell in server`, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	attached := len(sc.Text())
	sc.Type("PS1='vm''$ '\n")
	if _, err := sc.Expect(`vm\$ `, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// A second in the shell: the block's clock would tick five times.
	sc.Type("sleep 1; uname -n\n")
	if _, err := sc.Expect(`server\r*\n[^\n]*vm\$ `, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	inShell := sc.Text()[attached:]
	sc.Type("exit\n")
	if _, err := sc.Expect(`PASS`, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sc.Wait(); err != nil {
		t.Errorf("vmlab run: %v\n%q", err, sc.Text())
	}
	if strings.Contains(inShell, "\x1b[J") || regexp.MustCompile(`server +up \d`).MatchString(inShell) {
		t.Errorf("the block was redrawn over the shell; the terminal got, while attached:\n%q", inShell)
	}
	if after := sc.Text()[attached+len(inShell):]; !regexp.MustCompile(`server +up \d+\.\ds`).MatchString(after) {
		t.Errorf("the block did not come back after the shell; the terminal got:\n%q", after)
	}
}
