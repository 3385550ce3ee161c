package attach

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
)

// TestTerminal attaches a terminal: the shell gets a TTY of the
// terminal's size with TERM, the terminal is raw while it runs and
// restored after, and the status comes back.
func TestTerminal(t *testing.T) {
	ctl, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	if err := pty.SetSize(term, pty.Size{Rows: 33, Cols: 111}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm-attach")
	res, err := Run(context.Background(), term, term, term, []string{"true"}, func(ctx context.Context, o machine.ShellOptions) (machine.ShellResult, error) {
		if !o.TTY || o.Size != (pty.Size{Rows: 33, Cols: 111}) || o.Env["TERM"] != "xterm-attach" {
			t.Errorf("got TTY %v, size %v, TERM %q; want a 33x111 xterm-attach terminal", o.TTY, o.Size, o.Env["TERM"])
		}
		if s := <-o.Resize; s != o.Size {
			t.Errorf("first size on Resize: got %v, want %v", s, o.Size)
		}
		if mode, _ := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS); mode.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
			t.Errorf("the terminal is not raw while the shell runs: lflag %#x", mode.Lflag)
		}
		// Ctrl-C is a byte, not a signal.
		ctl.Write([]byte("\x03"))
		b := make([]byte, 1)
		if _, err := o.Stdin.Read(b); err != nil || b[0] != 3 {
			t.Errorf("read Ctrl-C: got %q, %v", b, err)
		}
		return machine.ShellResult{Status: 42}, nil
	})
	if err != nil || res.Status != 42 {
		t.Errorf("got %+v, %v; want status 42", res, err)
	}
	if mode, _ := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS); mode.Lflag&unix.ECHO == 0 || mode.Lflag&unix.ICANON == 0 {
		t.Errorf("the terminal was not restored: lflag %#x", mode.Lflag)
	}
}

// TestPipes attaches pipes: no TTY, stdin read to its end, a signal to
// this process forwarded, and a read still waiting when the shell returns
// ended, so it takes nothing typed later.
func TestPipes(t *testing.T) {
	inR, inW, _ := os.Pipe()
	defer inR.Close()
	defer inW.Close()
	out, _ := os.CreateTemp(t.TempDir(), "out")
	defer out.Close()
	inW.WriteString("uname -n\n")
	readerDone := make(chan error, 1)
	res, err := Run(context.Background(), inR, out, out, nil, func(ctx context.Context, o machine.ShellOptions) (machine.ShellResult, error) {
		if o.TTY || o.Command != nil {
			t.Errorf("got TTY %v, command %q; want pipes and a login shell", o.TTY, o.Command)
		}
		b := make([]byte, 100)
		if n, err := o.Stdin.Read(b); string(b[:n]) != "uname -n\n" {
			t.Errorf("read stdin: got %q, %v", b[:n], err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		select {
		case sig := <-o.Signals:
			if sig != syscall.SIGHUP {
				t.Errorf("got signal %v, want SIGHUP", sig)
			}
		case <-time.After(10 * time.Second):
			t.Error("SIGHUP was not forwarded")
		}
		go func() {
			_, err := o.Stdin.Read(b)
			readerDone <- err
		}()
		return machine.ShellResult{Status: 130, Signal: "SIGINT"}, nil
	})
	if err != nil || res.Status != 130 {
		t.Errorf("got %+v, %v; want status 130", res, err)
	}
	select {
	case err := <-readerDone:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("a read waiting when the shell returned: got %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read of stdin still waits after Run returned")
	}
	inW.WriteString("next\n")
	b := make([]byte, 10)
	if n, _ := io.ReadAtLeast(inR, b, 5); string(b[:n]) != "next\n" {
		t.Errorf("input typed after Run: got %q, want it left for the next reader", b[:n])
	}
}
