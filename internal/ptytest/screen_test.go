package ptytest

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
)

func TestShellOnTerminal(t *testing.T) {
	sc, err := Start(exec.Command("/bin/sh"), pty.Size{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Type("stty size; tty\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Expect(`24 80\r?\n/dev/pts/\d+`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sc.Resize(pty.Size{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	sc.Type("stty size\n")
	if _, err := sc.Expect(`30 100`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Ctrl-C reaches the foreground job: "ready" is printed once its trap
	// is set, and the job is in the foreground from the start.
	sc.Type(`sh -c 'trap "echo got-INT; exit 3" INT; echo ready; while :; do sleep 1; done'; echo "after-$?"` + "\n")
	if _, err := sc.Expect(`ready\r?\n`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc.Type("\x03")
	if _, err := sc.Expect(`got-INT`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	sc.Type("exit 7\n")
	err = sc.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit: got %v, want status 7", err)
	}
	if !strings.Contains(sc.Text(), "stty size") {
		t.Errorf("the screen lacks the echoed input: %q", sc.Text())
	}
}
