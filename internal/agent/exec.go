package agent

import (
	"cmp"
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
	"strings"
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

// exec runs one command to completion: on a terminal when it asks for one,
// else with stdout and stderr on their own pipes.
func (s *server) exec(ctx context.Context, id uint32, req *agentproto.Exec, st *stream) agentproto.Result {
	if req.TTY != nil {
		return s.execTTY(ctx, id, req, st)
	}
	var stdin *os.File
	if req.Stdin {
		// Our own pipe, not cmd.Stdin = in: os/exec's Wait would wait for
		// its copying goroutine, which blocks while the host sends nothing.
		r, w, err := os.Pipe()
		if err != nil {
			return agentproto.Result{Error: fmt.Sprintf("create stdin pipe: %v", err)}
		}
		defer st.in.Close(nil)
		go func() {
			io.Copy(w, st.in)
			w.Close()
		}()
		defer r.Close()
		stdin = r
	}
	stdout, err := newPump(s.output(agentproto.TStdout, id, req, st))
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	stderr, err := newPump(s.output(agentproto.TStderr, id, req, st))
	if err != nil {
		stdout.abort()
		return agentproto.Result{Error: err.Error()}
	}
	pid, wait, err := startCommand(ctx, req, stdin, stdout.w, stderr.w)
	if err != nil {
		stdout.abort()
		stderr.abort()
		return agentproto.Result{Error: err.Error()}
	}
	stdout.w.Close()
	stderr.w.Close()
	st.ctl.attach(nil, func(sig syscall.Signal) { syscall.Kill(-pid, sig) })
	var wg sync.WaitGroup
	wg.Go(stdout.run)
	wg.Go(stderr.run)

	res := waitProcess(ctx, pid, wait, req.Timeout)
	st.ctl.detach()
	stdout.exited()
	stderr.exited()
	wg.Wait()
	res.Detached = stdout.detached || stderr.detached
	return res
}

// startCommand starts req's shell with the given descriptors (stdin nil:
// /dev/null): through the fork server when req may take it and it runs
// (forksrv.go), else exec'd. It returns the shell's pid, how to wait for
// it.
func startCommand(ctx context.Context, req *agentproto.Exec, stdin, stdout, stderr *os.File) (pid int, wait func() (*os.ProcessState, error), err error) {
	if f := forkServerFor(req); f != nil {
		in := stdin
		if in == nil {
			if in, err = devNull(); err != nil {
				return 0, nil, fmt.Errorf("open %s for the command's stdin: %w", os.DevNull, err)
			}
		}
		pid, err := f.spawn(ctx, in, stdout, stderr, f.dir, req.Command)
		if err == nil {
			return pid, forkWait(pid), nil
		}
		if !errors.Is(err, errNotRun) {
			return 0, nil, err
		}
		logf("exec the shell: %v", err)
	}
	cmd, err := command(ctx, req, strictShell())
	if err != nil {
		return 0, nil, err
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err = cmd.Start(); err != nil {
		// Not the command itself: it may be 128 KiB long.
		return 0, nil, fmt.Errorf("start the command: %v", err)
	}
	return cmd.Process.Pid, cmdWait(cmd), nil
}

// devNull and devNullW are /dev/null, each opened once: for reading, the
// stdin of every command the fork server starts without input (os/exec
// opens its own, also read-only, for the exec path); for writing, the
// stderr of every wait's command. What a command does with the
// descriptor's flags changes nothing for the next: reads end at once,
// writes are dropped.
var (
	devNull  = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })
	devNullW = sync.OnceValues(func() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) })
)

// output is where a command's output of type typ goes: frames on stream
// id, under the stream's window when the request asks for it.
func (s *server) output(typ agentproto.Type, id uint32, req *agentproto.Exec, st *stream) io.Writer {
	if req.OutputWindow {
		return s.w.WindowedStream(typ, id, st.out)
	}
	return s.w.Stream(typ, id)
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
var bashPath = agentproto.BashPath

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

// loginShell is the shell Exec.Login runs: bash -l when the guest has bash,
// else sh -l, as a user logging in on a console gets.
func loginShell() shell {
	if _, err := os.Stat(bashPath); err != nil {
		return shell{path: posixShell.path, opts: []string{"-l"}}
	}
	return shell{path: bashPath, opts: []string{"-l"}}
}

// program returns the path and arguments req runs: its Argv, the login
// shell, or its command line run by sh.
func program(req *agentproto.Exec, sh shell) (path string, args []string, err error) {
	switch {
	case len(req.Argv) > 0 && strings.Contains(req.Argv[0], "/"):
		return req.Argv[0], req.Argv[1:], nil
	case len(req.Argv) > 0:
		// In DefaultPath, the PATH commands get: the agent's own
		// environment has none as PID 1.
		path, err := lookPath(req.Argv[0])
		if err != nil {
			return "", nil, fmt.Errorf("run %w", err)
		}
		return path, req.Argv[1:], nil
	case req.Login:
		login := loginShell()
		if err := noShellError(login.path); err != nil {
			return "", nil, err
		}
		return login.path, login.opts, nil
	}
	if err := noShellError(sh.path); err != nil {
		return "", nil, err
	}
	return sh.path, append(append(slices.Clip(sh.opts), "-c"), req.Command), nil
}

// command builds the process for req (see program), in a new process
// group, as the requested user, with a clean environment. Ending ctx kills
// the group.
func command(ctx context.Context, req *agentproto.Exec, sh shell) (*exec.Cmd, error) {
	path, args, err := program(req, sh)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if len(req.Argv) > 0 {
		cmd.Args[0] = req.Argv[0]
	}
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
	term := "dumb"
	if req.TTY != nil {
		term = cmp.Or(req.TTY.Term, "vt100")
	}
	cmd.Env = withCoverage(baseEnv(name, home, sh.path, term), req.Env)
	cmd.Dir = req.Dir
	if cmd.Dir == "" {
		cmd.Dir = workDir(home)
	}
	return cmd, nil
}

// baseEnv is the environment of a command of the user name, whose home is
// home, run by the shell at shell, before coverage's and the request's own.
func baseEnv(name, home, shell, term string) []string {
	return []string{
		"PATH=" + agentproto.DefaultPath, "HOME=" + home, "USER=" + name, "LOGNAME=" + name,
		"SHELL=" + shell, "LANG=C.UTF-8", "TERM=" + term,
	}
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
	return waitProcess(ctx, cmd.Process.Pid, cmdWait(cmd), timeout)
}

// waitProcess waits for the shell pid through wait. At the timeout or on
// cancellation its whole process group is killed.
func waitProcess(ctx context.Context, pid int, wait func() (*os.ProcessState, error), timeout time.Duration) agentproto.Result {
	var res agentproto.Result
	type waited struct {
		ps  *os.ProcessState
		err error
	}
	done := make(chan waited, 1)
	go func() {
		ps, err := wait()
		done <- waited{ps, err}
	}()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	var w waited
	select {
	case w = <-done:
	case <-deadline:
		res.TimedOut = true
		syscall.Kill(-pid, syscall.SIGKILL)
		w = <-done
	case <-ctx.Done():
		res.Canceled = true
		syscall.Kill(-pid, syscall.SIGKILL)
		w = <-done
	}
	switch {
	case w.err != nil || w.ps == nil:
		res.Exit = -1
		res.Error = fmt.Sprintf("wait: %v", w.err)
	default:
		ws := w.ps.Sys().(syscall.WaitStatus)
		res.Exit = ws.ExitStatus()
		if ws.Signaled() {
			res.Signal, res.SignalNumber = ws.Signal().String(), int(ws.Signal())
		}
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
	// keep leaves closing r to the caller: a terminal's controller, whose
	// close would hang the terminal up and kill its session's leader with
	// SIGHUP if it has not quite exited yet.
	keep bool
}

func newPump(out io.Writer) (*pump, error) {
	r, w, err := outputPipe()
	if err != nil {
		return nil, err
	}
	return &pump{w: w, r: r, out: out, done: make(chan struct{})}, nil
}

// outputPipe makes a command's output pipe. The read end is ours,
// non-blocking in the runtime's poller (its deadlines work, and closing it
// ends a read); the write end is the command's, a blocking descriptor the
// agent never polls. (os.Pipe puts both ends in the poller, and handing the
// command's over makes it blocking again: nine system calls more per
// command, each costly under TCG.)
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("create an output pipe: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, fmt.Errorf("create an output pipe: %w", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
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

// chunks holds the pumps' read buffers. A command's two pumps made 128 KiB
// of new memory, which the guest zeroed and the collector took back: a
// collection every 20 commands or so, and a tenth of the agent's CPU time
// under TCG.
var chunks = sync.Pool{New: func() any { return new([agentproto.ChunkSize]byte) }}

func (p *pump) run() {
	buf := chunks.Get().(*[agentproto.ChunkSize]byte)
	defer chunks.Put(buf)
	var exitedAt time.Time
	for {
		n, err := p.r.Read(buf[:])
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
		case !p.keep:
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
