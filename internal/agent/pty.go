package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/pty"
)

// execTTY runs a command on a new pseudo-terminal, as the controlling
// terminal of a new session (so the shell has job control, and Ctrl-C and
// Ctrl-Z typed as bytes reach its foreground job). Everything the command
// writes arrives as Stdout frames; when it exits, what is left in the
// terminal is read out (until every holder closed it, or it has been
// silent for outputIdle, outputLinger at most), so its last bytes are sent.
func (s *server) execTTY(ctx context.Context, id uint32, req *agentproto.Exec, st *stream) agentproto.Result {
	cmd, err := command(ctx, req, strictShell())
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	ctl, term, err := openTTY(req.TTY)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	if cred := cmd.SysProcAttr.Credential; cred != nil {
		// The user's terminal, as login(1) makes it: programs that open
		// it again by name (tty, ssh, gpg's pinentry) may.
		if err := term.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			ctl.Close()
			term.Close()
			return agentproto.Result{Error: fmt.Sprintf("give the terminal to %s: %v", req.User, err)}
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term, term, term
	// A new session, not just a process group: Setpgid would fail after
	// setsid, and the session leader's pid is its group's id, which the
	// Cancel of command kills.
	cmd.SysProcAttr.Setpgid = false
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	out := &pump{w: term, r: ctl, out: s.output(agentproto.TStdout, id, req, st), done: make(chan struct{}), keep: true}
	err = cmd.Start()
	if err != nil {
		out.abort()
		return agentproto.Result{Error: fmt.Sprintf("start the command: %v", err)}
	}
	term.Close() // the command holds it now: its last close makes reads end (EIO)
	if req.Stdin {
		go typeInput(ctl, st.in)
	}
	st.ctl.attach(
		func(rows, cols uint16) { setSize(ctl, rows, cols) },
		func(sig syscall.Signal) { syscall.Kill(-foreground(ctl, cmd.Process.Pid), sig) })
	var wg sync.WaitGroup
	wg.Go(out.run)
	res := waitCommand(ctx, cmd, req.Timeout)
	st.ctl.detach()
	out.exited()
	wg.Wait()
	// Now that the command has been waited for: processes it left behind
	// on the terminal get SIGHUP, as when a terminal window closes.
	ctl.Close()
	res.Detached = out.detached
	return res
}

// openTTY opens a terminal of t's size. The controller is non-blocking, so
// the pump's read deadlines work on it.
func openTTY(t *agentproto.TTY) (ctl, term *os.File, err error) {
	c, term, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	defer c.Close()
	size := pty.Size{Rows: t.Rows, Cols: t.Cols}
	if size.Rows == 0 || size.Cols == 0 {
		size = pty.Size{Rows: 24, Cols: 80}
	}
	if err := pty.SetSize(term, size); err != nil {
		term.Close()
		return nil, nil, err
	}
	// os.File polls a descriptor only when it is non-blocking as it is
	// wrapped: set the flag on a copy, then wrap the copy.
	fd, err := unix.FcntlInt(c.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		term.Close()
		return nil, nil, fmt.Errorf("make the terminal non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), c.Name()), term, nil
}

// typeInput writes the host's input to the terminal as typed keys, and
// at its end the terminal's EOF character (Ctrl-D unless stty changed it),
// as a user closing the input would.
func typeInput(ctl *os.File, in io.Reader) {
	_, err := io.Copy(ctl, in)
	if err != nil {
		return // the stream ended first
	}
	// Not ctl.Fd(): it would make the descriptor blocking, and the pump's
	// read deadlines would stop working.
	eof := byte(4)
	if rc, err := ctl.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err == nil && t.Cc[unix.VEOF] != 0 {
				eof = t.Cc[unix.VEOF]
			}
		})
	}
	ctl.Write([]byte{eof})
}

// foreground returns the terminal's foreground process group (the job a
// Ctrl-C would reach), or leader's when it cannot tell.
func foreground(ctl *os.File, leader int) int {
	rc, err := ctl.SyscallConn()
	if err != nil {
		return leader
	}
	pgrp := leader
	rc.Control(func(fd uintptr) {
		if p, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP); err == nil && p > 0 {
			pgrp = p
		}
	})
	return pgrp
}

// controls holds a stream's Resize and Signal frames for its command. They
// may arrive before the command has started (right behind the request):
// the last size and the signals wait until attach, and after detach they
// are dropped. Its methods run on the channel's reading goroutine and
// never block for long (an ioctl, a kill).
type controls struct {
	mu      sync.Mutex
	size    *[2]uint16
	signals []syscall.Signal
	ended   bool
	resize  func(rows, cols uint16)
	signal  func(syscall.Signal)
}

func (c *controls) onResize(rows, cols uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ended:
	case c.resize != nil:
		c.resize(rows, cols)
	default:
		c.size = &[2]uint16{rows, cols}
	}
}

func (c *controls) onSignal(sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ended:
	case c.signal != nil:
		c.signal(sig)
	case len(c.signals) < 64: // a host that floods a command not started yet loses the surplus
		c.signals = append(c.signals, sig)
	}
}

// attach hands the controls to a started command, with what came before.
// A nil resize drops sizes (a command without a terminal).
func (c *controls) attach(resize func(rows, cols uint16), signal func(syscall.Signal)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resize, c.signal = resize, signal
	if c.size != nil && resize != nil {
		resize(c.size[0], c.size[1])
	}
	for _, sig := range c.signals {
		signal(sig)
	}
	c.size, c.signals = nil, nil
}

// detach drops the controls that come from now on: the command has ended.
func (c *controls) detach() {
	c.mu.Lock()
	c.ended, c.resize, c.signal = true, nil, nil
	c.mu.Unlock()
}

// signalNumber is the number of a signal agentproto.DecodeSignal accepted.
func signalNumber(name string) (syscall.Signal, error) {
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, errors.New("unknown signal " + name)
	}
	return sig, nil
}

// setSize is pty.SetSize without ctl.Fd(), which would make the descriptor
// blocking.
func setSize(ctl *os.File, rows, cols uint16) {
	if rc, err := ctl.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
	}
}
