package cli

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestConsoleInteract runs a test file that calls console_interact() under
// vmlab run on a terminal: the user sees what the guest wrote on its
// serial console, what they type reaches the guest's ttyS0, and Ctrl-]
// then q goes back to the test.
func TestConsoleInteract(t *testing.T) {
	bin := vmtest.Agent(t)
	dir := t.TempDir()
	file := dir + "/console.star"
	src := `server = machine()

def test():
    server.succeed("setsid sh -c 'head -n 1 /dev/ttyS0 > /tmp/typed' < /dev/null > /dev/null 2>&1 &",
                   "echo written-on-ttyS0 > /dev/ttyS0")
    server.console_interact()
    server.wait_until_succeeds("grep -qx typed-by-hand /tmp/typed", timeout = 30)
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", file)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "VMLAB_AGENT="+bin, "TERM=xterm-ptytest")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.Expect(`the serial console of server`, 120*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Expect(`written-on-ttyS0`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	sc.Type("typed-by-hand\r\x1dq")
	if _, err := sc.Expect(`left the serial console of server`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var exited bool
	if exited, err = sc.WaitWithin(120 * time.Second); !exited {
		t.Fatalf("vmlab run still runs 120s after leaving the console; the screen:\n%s", sc.Text())
	}
	if err != nil {
		t.Errorf("vmlab run: got %v, want the test to pass (the guest read what was typed); the screen:\n%s", err, sc.Text())
	}
}
