// Package attach connects the user's own terminal, or the pipes vmlab was
// given, to a shell or command in a machine: raw mode and window sizes on a
// terminal, forwarded signals on pipes, the terminal restored however it
// ends. It is generic over the function that runs the shell, so the same
// code serves a machine in this process (Machine.Shell) and one reached
// through a lab's control socket.
package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
)

// ShellFunc runs a shell or command as Machine.Shell does.
type ShellFunc = func(context.Context, machine.ShellOptions) (machine.ShellResult, error)

// Run runs command (nil: a login shell) through shell with stdin, stdout
// and stderr attached, and returns how it ended, for the caller to exit
// with its status.
//
// When stdin and stdout are both terminals, the command gets a terminal
// in the guest (TTY, TERM and the window size from here, resizes as they
// happen) and stdin is put in raw mode, so Ctrl-C, Ctrl-Z and Ctrl-D are
// bytes for the guest. Otherwise the command gets pipes: stdin is read to
// its end, and SIGINT, SIGTERM and SIGHUP that reach this process are sent
// to the command (the caller's context may end on them too: that is the
// caller's choice). Either way SIGTERM and SIGHUP are forwarded, and the
// terminal is restored before Run returns. Input is read only while the
// command runs: a keystroke typed after it ended stays for the next reader.
func Run(ctx context.Context, stdin, stdout, stderr *os.File, command []string, shell ShellFunc) (machine.ShellResult, error) {
	in, err := newInput(stdin)
	if err != nil {
		return machine.ShellResult{}, err
	}
	defer in.Close()
	o := machine.ShellOptions{Command: command, Stdin: in, Stdout: stdout, Stderr: stderr}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	o.Signals = sigs

	if pty.IsTerminal(stdin) && pty.IsTerminal(stdout) {
		restore, err := terminal(ctx, stdin, &o)
		if err != nil {
			return machine.ShellResult{}, err
		}
		defer restore()
	}
	return shell(ctx, o)
}

// terminal fills in o's terminal from stdin and puts it in raw mode; the
// returned function stops watching its size and restores its mode.
func terminal(ctx context.Context, stdin *os.File, o *machine.ShellOptions) (restore func(), err error) {
	size, err := pty.GetSize(stdin)
	if err != nil {
		return nil, err
	}
	o.TTY, o.Size = true, size
	if term := os.Getenv("TERM"); term != "" {
		// Explicit: the shell may run in another process (a lab's), whose
		// TERM is not this terminal's.
		o.Env = map[string]string{"TERM": term}
	}
	undo, err := pty.MakeRaw(stdin)
	if err != nil {
		return nil, err
	}
	watch, stop := context.WithCancel(ctx)
	o.Resize = pty.WatchSize(watch, stdin)
	return func() {
		stop()
		undo()
	}, nil
}

// input reads a file (a terminal, a pipe) only while the command runs:
// Close wakes a read that waits for input, so no goroutine stays behind
// to swallow the next keystroke meant for the REPL or the shell vmlab was
// started from. It polls rather than setting O_NONBLOCK, a flag the
// terminal's other readers (the user's shell) would share.
type input struct {
	f            *os.File
	fd           int
	wakeR, wakeW *os.File
	once         sync.Once
}

func newInput(f *os.File) (*input, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create a pipe to stop reading %s: %w", f.Name(), err)
	}
	return &input{f: f, fd: int(f.Fd()), wakeR: r, wakeW: w}, nil
}

// Read reads from the file once it has input, or returns os.ErrClosed
// once Close was called.
func (in *input) Read(p []byte) (int, error) {
	for {
		fds := []unix.PollFd{{Fd: int32(in.fd), Events: unix.POLLIN}, {Fd: int32(in.wakeR.Fd()), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 0, fmt.Errorf("wait for input on %s: %w", in.f.Name(), err)
		}
		if fds[1].Revents != 0 {
			return 0, os.ErrClosed
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(in.fd, p)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return 0, fmt.Errorf("read %s: %w", in.f.Name(), err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close stops reading: a Read waiting for input returns os.ErrClosed. It
// is idempotent. The file itself stays open (it is the caller's).
func (in *input) Close() error {
	in.once.Do(func() { in.wakeW.Close() })
	return nil
}
