package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Once a command's shell has exited, its output pipes are read until they
// close. A process it left in the background may hold them open for ever, so
// reading stops when they have been silent for outputIdle, or outputLinger
// after the exit at most, and the Result says Detached. The background
// process keeps running; what it writes later is read and discarded so it
// never blocks or dies of SIGPIPE.
const (
	outputIdle   = 20 * time.Millisecond
	outputLinger = time.Second
)

// exec runs one command to completion.
func (s *server) exec(ctx context.Context, id uint32, req *agentproto.Exec, in *agentproto.Queue) agentproto.Result {
	cmd, err := command(ctx, req, strictShell())
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	if req.Stdin {
		// Our own pipe, not cmd.Stdin = in: os/exec's Wait would wait for
		// its copying goroutine, which blocks while the host sends nothing.
		r, w, err := os.Pipe()
		if err != nil {
			return agentproto.Result{Error: fmt.Sprintf("create stdin pipe: %v", err)}
		}
		defer in.Close(nil)
		go func() {
			io.Copy(w, in)
			w.Close()
		}()
		defer r.Close()
		cmd.Stdin = r
	}
	stdout, err := newPump(s.w, agentproto.TStdout, id)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	stderr, err := newPump(s.w, agentproto.TStderr, id)
	if err != nil {
		stdout.abort()
		return agentproto.Result{Error: err.Error()}
	}
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	done, err := start(cmd)
	if err != nil {
		stdout.abort()
		stderr.abort()
		// Not the command itself: it may be 128 KiB long.
		return agentproto.Result{Error: fmt.Sprintf("start the command: %v", err)}
	}
	defer done()
	stdout.w.Close()
	stderr.w.Close()
	var wg sync.WaitGroup
	wg.Go(stdout.run)
	wg.Go(stderr.run)

	res := waitCommand(ctx, cmd, req.Timeout)
	stdout.exited()
	stderr.exited()
	wg.Wait()
	res.Detached = stdout.detached || stderr.detached
	return res
}

// shell is how a command line is run: the program and the options that come
// before -c.
type shell struct {
	path string
	opts []string
}

// posixShell runs services' command lines, which stand for a unit's
// ExecStart (no shell options in NixOS either).
var posixShell = shell{path: "/bin/sh"}

// bashPath is where strictShell looks for bash (a var for tests).
var bashPath = "/bin/bash"

// strictShell returns the shell for test commands (exec and the waits that
// run one): bash -euo pipefail when the guest has bash, as the NixOS driver
// runs them ("( set -euo pipefail; CMD )" in bash), so `false | true`
// fails in both; /bin/sh (dash on Debian) otherwise. A command that wants
// plain sh semantics starts with `set +euo pipefail` or runs `sh -c '...'`.
// bash costs ~18 ms more per command than dash under TCG (bench (c): 35 ms
// against 17 ms on a quiet host); NixOS semantics come first.
func strictShell() shell {
	if _, err := os.Stat(bashPath); err != nil {
		return posixShell
	}
	return shell{path: bashPath, opts: []string{"-euo", "pipefail"}}
}

// command builds the process for req: sh's command line run by sh, in a new
// process group, as the requested user, with a clean environment. Ending ctx
// kills the group.
func command(ctx context.Context, req *agentproto.Exec, sh shell) (*exec.Cmd, error) {
	args := append(append(slices.Clip(sh.opts), "-c"), req.Command)
	cmd := exec.CommandContext(ctx, sh.path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	name, home := "root", "/root"
	if req.User != "" && req.User != "root" {
		u, err := user.Lookup(req.User)
		if err != nil {
			return nil, fmt.Errorf("run as %q: %w", req.User, err)
		}
		cred, err := credential(u)
		if err != nil {
			return nil, fmt.Errorf("run as %q: %w", req.User, err)
		}
		cmd.SysProcAttr.Credential = cred
		name, home = u.Username, u.HomeDir
	}
	cmd.Env = append([]string{
		"PATH=" + agentproto.DefaultPath, "HOME=" + home, "USER=" + name, "LOGNAME=" + name,
		"SHELL=" + sh.path, "LANG=C.UTF-8", "TERM=dumb",
	}, req.Env...)
	cmd.Dir = req.Dir
	if cmd.Dir == "" {
		cmd.Dir = workDir(home)
	}
	return cmd, nil
}

// workDir is where commands run by default: the user's home, or / when it
// does not exist.
func workDir(home string) string {
	if _, err := os.Stat(home); err != nil {
		return "/"
	}
	return home
}

// guestPath resolves p as a command of user (empty: root) would: a relative
// path against the directory commands run in, so wait_for_file("out") waits
// for the file `touch out` makes (it looked in the agent's / and hung).
func guestPath(p, userName string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	home := "/root"
	if userName != "" && userName != "root" {
		u, err := user.Lookup(userName)
		if err != nil {
			return p // the wait's command fails with the reason
		}
		home = u.HomeDir
	}
	return filepath.Join(workDir(home), p)
}

func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	groups, _ := u.GroupIds()
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(n))
		}
	}
	return cred, nil
}

// waitCommand waits for cmd's shell to exit. At the timeout or on
// cancellation the whole process group is killed.
func waitCommand(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) agentproto.Result {
	var res agentproto.Result
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	var err error
	select {
	case err = <-done:
	case <-deadline:
		res.TimedOut = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	case <-ctx.Done():
		res.Canceled = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		ws := exitErr.Sys().(syscall.WaitStatus)
		res.Exit = ws.ExitStatus()
		if ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	default:
		res.Exit = -1
		res.Error = fmt.Sprintf("wait: %v", err)
	}
	return res
}

// pump carries one output pipe of a command to the host as frames.
type pump struct {
	w        *os.File // the command's end
	r        *os.File // ours, non-blocking so deadlines work
	out      io.Writer
	done     chan struct{} // closed by exited
	detached bool
}

func newPump(w *agentproto.Writer, typ agentproto.Type, id uint32) (*pump, error) {
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create %v pipe: %w", typ, err)
	}
	return &pump{w: pw, r: r, out: w.Stream(typ, id), done: make(chan struct{})}, nil
}

// exited tells the pump the shell has exited: from now on silence ends it.
func (p *pump) exited() {
	close(p.done)
	p.r.SetReadDeadline(time.Now().Add(outputIdle))
}

func (p *pump) abort() {
	p.w.Close()
	p.r.Close()
}

// pending reports whether a read would return at once: bytes are buffered in
// the pipe, or every writer has closed it.
func (p *pump) pending() bool {
	rc, err := p.r.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	})
	return ready
}

func (p *pump) run() {
	buf := make([]byte, agentproto.ChunkSize)
	var exitedAt time.Time
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			p.out.Write(buf[:n])
		}
		if exitedAt.IsZero() {
			select {
			case <-p.done:
				exitedAt = time.Now()
			default:
			}
		}
		switch {
		case err == nil && exitedAt.IsZero():
			continue
		case err == nil && time.Since(exitedAt) < outputLinger,
			errors.Is(err, os.ErrDeadlineExceeded) && p.pending():
			// The deadline is checked before reading, so data or EOF
			// may be waiting all the same when a busy guest ran us late.
			p.r.SetReadDeadline(time.Now().Add(outputIdle))
			continue
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			p.detach()
		default:
			p.r.Close()
		}
		return
	}
}

// detach stops forwarding: what background processes write from now on is
// read and dropped, so they never block on a full pipe or die of SIGPIPE.
func (p *pump) detach() {
	p.detached = true
	p.r.SetReadDeadline(time.Time{})
	go func() {
		io.Copy(io.Discard, p.r)
		p.r.Close()
	}()
}
