package machine_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
)

// TestFakeShell runs Machine.Shell on the real agent behind a fake QEMU:
// stdin and stdout through, the exit status, a signal from the host, a
// terminal, and a bad command named with the machine.
func TestFakeShell(t *testing.T) {
	m := fakeMachine(t, "serve")
	var out bytes.Buffer
	res, err := m.Shell(t.Context(), machine.ShellOptions{Command: []string{"sh", "-c", "tr a-z A-Z; exit 3"},
		Stdin: strings.NewReader("uname -n\n"), Stdout: &out})
	if err != nil || res.Status != 3 || out.String() != "UNAME -N\n" {
		t.Errorf("got %+v, %v, stdout %q; want status 3 and \"UNAME -N\\n\"", res, err, &out)
	}

	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM // waits in the agent until the command has started
	res, err = m.Shell(t.Context(), machine.ShellOptions{Command: []string{"sleep", "100"}, Signals: sigs})
	if err != nil || res.Status != 128+15 || res.Signal != "SIGTERM" {
		t.Errorf("SIGTERM: got %+v, %v; want status 143, SIGTERM", res, err)
	}

	out.Reset()
	res, err = m.Shell(t.Context(), machine.ShellOptions{Command: []string{"sh", "-c", "test -t 0 && echo $TERM"},
		TTY: true, Env: map[string]string{"TERM": "xterm-vmlab"}, Stdout: &out})
	if err != nil || res.Status != 0 || out.String() != "xterm-vmlab\r\n" {
		t.Errorf("TTY: got %+v, %v, stdout %q; want a terminal with TERM=xterm-vmlab", res, err, &out)
	}

	_, err = m.Shell(t.Context(), machine.ShellOptions{Command: []string{"no-such-program"}})
	if err == nil || !strings.Contains(err.Error(), `fake: command "no-such-program": run no-such-program: not found`) {
		t.Errorf("no such program: got %v, want an error naming the machine and the program", err)
	}
}

// TestFakeShellMachineDies: a shell whose machine dies under it returns a
// DownError naming the machine, at once.
func TestFakeShellMachineDies(t *testing.T) {
	m := fakeMachine(t, "serve")
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := &lineWaiter{line: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := m.Shell(t.Context(), machine.ShellOptions{Command: []string{"sh", "-c", "echo ready; exec sleep 100"}, Stdout: out})
		done <- err
	}()
	<-out.line
	syscall.Kill(m.QEMUPid(), syscall.SIGKILL)
	err := <-done
	var down *machine.DownError
	if !errors.As(err, &down) || !strings.HasPrefix(err.Error(), "fake: command ") {
		t.Errorf("got %v, want a DownError naming the machine and the command", err)
	}
}

// lineWaiter closes line at its first write.
type lineWaiter struct {
	line chan struct{}
	once sync.Once
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.line) })
	return len(p), nil
}
