package cli

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestShellIntoRunningTest: a running test's machines are reachable from
// another terminal as the lab FILE.TEST: vmlab shell into it unblocks the
// test's wait, vmlab down is refused (the test is stopped where it runs),
// and the lab is gone when the run ends. Then a REPL's machines.
func TestShellIntoRunningTest(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime := t.TempDir()
	vmlab := func(args ...string) (int, string) {
		out, err := vmlabCmd(t, bin, runtime, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("vmlab %v: %v", args, err)
		}
		return 0, string(out)
	}
	t.Run("run", func(t *testing.T) {
		wait, exited := startedLines(t, vmlabCmd(t, bin, runtime, "run", "-v", "testdata/waits.star"))
		wait("vm: booted in")
		code, msg := vmlab("down", "-lab", "waits.test")
		if code == 0 || !strings.Contains(msg, "belongs to vmlab run") {
			t.Errorf("down on a running test's lab: exit %d, %q; want refused, naming vmlab run", code, msg)
		}
		if code, msg := vmlab("shell", "-lab", "waits.test", "vm", "--", "sh", "-c", "echo from-outside > /root/go"); code != 0 {
			t.Fatalf("shell into the running test: exit %d: %s", code, msg)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("the test failed after the shell made its file: %v", err)
			}
		case <-time.After(3 * time.Minute):
			t.Fatal("the test still runs 3 minutes after the shell made its file")
		}
		if code, msg := vmlab("status", "-lab", "waits.test"); code == 0 {
			t.Errorf("the test's lab is still served after the run: %s", msg)
		}
	})

	t.Run("repl", func(t *testing.T) {
		repl := vmlabCmd(t, bin, runtime, "repl", "testdata/waits.star")
		stdin, w := io.Pipe()
		repl.Stdin = stdin
		wait, exited := startedLines(t, repl)
		io.WriteString(w, "print(\"marked\", vm.succeed(\"echo in-repl > /root/mark\"))\n")
		wait("marked")
		code, got := vmlab("shell", "-lab", "waits", "vm", "--", "cat", "/root/mark")
		if code != 0 || strings.TrimSpace(got) != "in-repl" {
			t.Errorf("shell into the REPL's machine: exit %d, %q; want in-repl", code, got)
		}
		w.Close() // end of input: the REPL leaves and stops the machine
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the REPL: %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("the REPL still runs 2 minutes after its input ended")
		}
	})
}

// startedLines runs cmd with its output read line by line; wait returns
// once a line contains want.
func startedLines(t *testing.T, cmd *exec.Cmd) (wait func(want string), exited <-chan error) {
	t.Helper()
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		w.Close()
		done <- err
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("%s: %s", cmd.Args[1], sc.Text())
			lines <- sc.Text()
		}
		close(lines)
	}()
	return func(want string) {
		t.Helper()
		deadline := time.After(3 * time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("vmlab %s ended before it said %q", cmd.Args[1], want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-deadline:
				t.Fatalf("vmlab %s did not say %q in 3 minutes", cmd.Args[1], want)
			}
		}
	}, done
}
