package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agent/forksrv"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// The fork server (docs/architecture.md "Commands"): a bash started as a
// command's shell is, which loads the forksrv builtin (forksrv/src) and then
// clones itself for each command instead of the agent exec'ing a new bash.
// The clone's parent is the agent, as an exec'd shell's would be.

// forkLib is the builtin's library, read from the initramfs before the
// switch to the guest's root; nil: no fork server, commands exec the shell.
var forkLib []byte

// loadForkLib reads the library the host put in the initramfs, if any.
func loadForkLib() {
	if b, err := os.ReadFile(forksrv.GuestPath); err == nil {
		forkLib = b
	}
}

// forkBootstrap is the fork server's command line: the library comes as
// descriptor 4 (a memfd, so nothing of it is in the guest's files), the
// socket to the agent as 3.
const forkBootstrap = "enable -f /proc/self/fd/4 forksrv; exec 4<&-; forksrv 3"

// forkBootstrapKeepArgs is forkBootstrap for tests on a host whose root may
// not set a process's command line (no CAP_SYS_RESOURCE): the commands'
// /proc/PID/cmdline is then the server's.
const forkBootstrapKeepArgs = "enable -f /proc/self/fd/4 forksrv; exec 4<&-; forksrv -k 3"

// maxArgLen is the kernel's limit on one argument of an exec (MAX_ARG_STRLEN
// with its NUL): a longer command fails to start on the exec path, so it
// takes that path to fail the same way.
const maxArgLen = 32 * 4096

// errNotRun says the fork server did not start the command (it is gone, or
// its clone failed): the exec path may run it, and it runs once.
var errNotRun = errors.New("the fork server did not start the command")

// forkEligible reports whether req may take the fork server: only commands
// whose outcome cannot differ from an exec'd `bash -euo pipefail -c`,
// root's, in the default directory and environment, without a terminal.
func forkEligible(req *agentproto.Exec) bool {
	return req.TTY == nil && len(req.Argv) == 0 && !req.Login &&
		(req.User == "" || req.User == "root") && req.Dir == "" && len(req.Env) == 0 &&
		len(req.Command) < maxArgLen && !strings.ContainsRune(req.Command, 0)
}

// forkServer is one running fork server.
type forkServer struct {
	conn   *net.UnixConn // requests: SOCK_SEQPACKET
	pid    int           // the warm shell's
	proc   *os.Process   // the warm shell: signalled through its pidfd
	dir    string        // the directory it started in
	exited chan struct{} // closed when the shell has exited
	failed bool          // a request of its failed (forkServers.mu)
	shell  *shellCopy    // the initramfs's copy it started from; nil: the root's shell
}

// kill ends the server and waits until it has been reaped. Its process,
// not its pid: once reaped, the pid may be another process's.
func (f *forkServer) kill() {
	f.proc.Kill()
	<-f.exited
}

// forkServerBootstrap is the command line forkServerFor starts servers with
// (a var for tests).
var forkServerBootstrap = forkBootstrap

// forkReplyTimeout bounds the wait for the server's answer to a request
// (the new shell's pid, a clone away): a stopped or stuck server costs its
// one command this long, which then takes the exec path, and the server is
// killed (a var for tests).
var forkReplyTimeout = 5 * time.Second

// maxForkFailures is how many servers in a row may fail a request (die or
// not answer) before the agent stops restarting it: from then on
// commands exec their shell.
const maxForkFailures = 3

// forkServers holds the agent's fork server, started on the first command
// that may use it and again after it died (a test's `kill -9 -1`).
var forkServers struct {
	mu       sync.Mutex
	cur      *forkServer
	broken   bool // it failed: commands exec the shell from now on
	failures int  // requests that failed in a row
}

// forkResult records whether f answered a request: maxForkFailures
// servers in a row that failed one mark the server broken, with one line on
// the console. A server counts once: the other requests in flight when it
// is killed fail with it.
func forkResult(f *forkServer, err error) {
	forkServers.mu.Lock()
	defer forkServers.mu.Unlock()
	if err == nil {
		forkServers.failures = 0
		return
	}
	if f.failed {
		return
	}
	f.failed = true
	forkServers.failures++
	if forkServers.failures == maxForkFailures && !forkServers.broken {
		forkServers.broken = true
		logf("commands exec their shell (%d fork servers in a row failed a request): %v", maxForkFailures, err)
	}
}

// forkServerFor returns the running fork server for req, starting it if
// needed, or nil when req must exec its shell.
func forkServerFor(req *agentproto.Exec) *forkServer {
	if forkLib == nil || !forkEligible(req) {
		return nil
	}
	sh := strictShell()
	if sh.path != bashPath {
		return nil
	}
	forkServers.mu.Lock()
	defer forkServers.mu.Unlock()
	if forkServers.broken {
		return nil
	}
	f := forkServers.cur
	if f != nil {
		select {
		case <-f.exited:
			f = nil
		default:
		}
	}
	if f != nil && workDir("/root") != f.dir {
		// The home appeared or went since the server started there: a
		// new one starts where an exec'd shell would.
		f.kill()
		f = nil
	}
	if f == nil {
		var err error
		if f, err = startForkServer(forkLib, sh, forkServerBootstrap); err != nil {
			logf("commands exec their shell (no fork server): %v", err)
			forkServers.broken = true
			return nil
		}
		forkServers.cur = f
	}
	return f
}

// warmForkServer starts the fork server before the first command asks for
// it (a guest without bash 5.2 or the library starts none). A command that
// comes meanwhile waits for it under forkServers.mu.
func warmForkServer() {
	forkServerFor(&agentproto.Exec{})
}

// startForkServer starts the warm shell exactly as command() starts a
// command's, and waits until it serves.
func startForkServer(lib []byte, sh shell, bootstrap string) (*forkServer, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create the fork server's socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "forksrv"), os.NewFile(uintptr(fds[1]), "forksrv peer")
	defer theirs.Close()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("use the fork server's socket: %w", err)
	}
	conn := c.(*net.UnixConn)
	mfd, err := unix.MemfdCreate("vmlab-forksrv.so", unix.MFD_CLOEXEC)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("create the fork server's library: %w", err)
	}
	so := os.NewFile(uintptr(mfd), "forksrv.so")
	defer so.Close()
	if _, err := so.Write(lib); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write the fork server's library: %w", err)
	}
	cmd, err := command(context.Background(), &agentproto.Exec{Command: bootstrap}, sh)
	if err != nil {
		conn.Close()
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{theirs, so}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start the fork server: %w", err)
	}
	theirs.Close()
	so.Close()
	f := &forkServer{conn: conn, pid: cmd.Process.Pid, proc: cmd.Process, dir: cmd.Dir, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		conn.Close()
		close(f.exited)
	}()
	// A cold guest under TCG takes a while to load bash the first time.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	var b [1]byte
	n, err := conn.Read(b[:])
	conn.SetReadDeadline(time.Time{})
	if n == 1 && b[0] == 'R' {
		return f, nil
	}
	f.kill()
	why := strings.TrimSpace(stderr.String())
	if why == "" {
		why = fmt.Sprintf("read its ready byte: %v", err)
	}
	return nil, fmt.Errorf("the fork server did not start (%s): %s", cmd.ProcessState, why)
}

// spawn has the fork server start command in dir with stdin, stdout and
// stderr, and returns the shell's pid. errNotRun means the command did not
// start (nothing of it ran): the server is gone or did not answer, ctx ended
// first, or the shell could not change to dir.
func (f *forkServer) spawn(ctx context.Context, stdin, stdout, stderr *os.File, dir, command string) (pid int, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: create its control socket: %v", errNotRun, err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "forksrv ctl peer")
	ctl, err := newCtlSock(fds[0])
	if err != nil {
		unix.Close(fds[0])
		theirs.Close()
		return 0, fmt.Errorf("%w: use its control socket: %v", errNotRun, err)
	}
	defer ctl.Close()
	if err := ctx.Err(); err != nil {
		// As exec.Cmd.Start refuses to start a command.
		theirs.Close()
		return 0, fmt.Errorf("%w: %v", errNotRun, err)
	}
	a := f.request(ctl, theirs, stdin, stdout, stderr, dir, command)
	forkResult(f, a.serverErr)
	if a.serverErr != nil {
		// Gone or stuck: the next command starts another.
		f.kill()
	}
	switch {
	case a.child > 0 && a.errno == 0:
		// Started: what became of the server does not matter.
		return a.child, nil
	case a.child > 0:
		// It exited having run nothing.
		forkWait(a.child)()
		return 0, fmt.Errorf("%w: chdir %s: %v", errNotRun, dir, a.errno)
	case a.clone > 0:
		// It ended before it answered, so before it ran anything.
		forkWait(a.clone)()
	}
	if a.serverErr != nil {
		return 0, a.serverErr
	}
	return 0, fmt.Errorf("%w: the new shell ended before it started the command", errNotRun)
}

// Tags of the answers on a request's control socket (forksrv.c): each is the
// tag and a native 32-bit number.
const (
	answerServer = 'P' // the clone's pid, or a negated errno: no clone
	answerChild  = 'C' // the clone's chdir: 0 or its errno; then its pid
)

// answers is what came back for a request.
type answers struct {
	clone     int           // the clone's pid, from the server
	child     int           // the clone's pid, from the clone: it answered
	errno     syscall.Errno // the clone's chdir
	serverErr error         // the server failed the request (errNotRun)
}

// request sends the fork server a request, the four descriptors, and then
// the go-ahead on ctl (the directory and the command), and reads the
// answers; they come in either order, and nothing waits for another. The
// server must answer within forkReplyTimeout, else it is stuck (a test's
// kill -STOP) and is killed. A command runs at most once: the clone answers
// before it runs anything, so the reading goes on until it answers or ctl
// ends, which it does only once no clone holds it (none was made, or it ended
// before it ran anything).
func (f *forkServer) request(ctl *ctlSock, theirs, stdin, stdout, stderr *os.File, dir, command string) (a answers) {
	rights := unix.UnixRights(int(stdin.Fd()), int(stdout.Fd()), int(stderr.Fd()), int(theirs.Fd()))
	_, _, err := f.conn.WriteMsgUnix([]byte{0}, rights, nil)
	theirs.Close()
	if err != nil {
		a.serverErr = fmt.Errorf("%w: send it the request: %v", errNotRun, err)
		return a
	}
	msg := make([]byte, 0, 8+len(dir)+len(command))
	msg = binary.NativeEndian.AppendUint32(msg, uint32(len(dir)))
	msg = append(msg, dir...)
	msg = binary.NativeEndian.AppendUint32(msg, uint32(len(command)))
	msg = append(msg, command...)
	// A long command may not fit in the socket's buffer, and a server that
	// never clones leaves it unread.
	ctl.SetDeadline(time.Now().Add(forkReplyTimeout))
	if _, err := ctl.Write(msg); err != nil {
		// A clone reads the end of an unfinished go-ahead and exits.
		ctl.CloseWrite()
		a.serverErr = fmt.Errorf("%w: send it the command: %v", errNotRun, err)
	}
	answered := false // the server answered, or was killed for not answering
	for !answered || a.child == 0 {
		var b [5]byte
		_, err := io.ReadFull(ctl, b[:])
		if errors.Is(err, os.ErrDeadlineExceeded) && !answered {
			// Stuck: kill it, then see whether it made a clone.
			f.kill()
			a.serverErr = fmt.Errorf("%w: no answer in %v", errNotRun, forkReplyTimeout)
			ctl.SetDeadline(time.Time{})
			answered = true
			continue
		}
		if err != nil {
			if !answered && a.serverErr == nil {
				a.serverErr = fmt.Errorf("%w: read its answer: %v", errNotRun, err)
			}
			return a
		}
		n := int(int32(binary.NativeEndian.Uint32(b[1:])))
		switch b[0] {
		case answerServer:
			answered = true
			if n <= 0 {
				a.serverErr = fmt.Errorf("%w: clone: %v", errNotRun, syscall.Errno(-n))
				return a
			}
			a.clone = n
			// The clone answers as soon as it runs: no deadline.
			ctl.SetDeadline(time.Time{})
		case answerChild:
			a.errno = syscall.Errno(n)
			if _, err := io.ReadFull(ctl, b[1:]); err != nil {
				if a.serverErr == nil {
					a.serverErr = fmt.Errorf("%w: read the new shell's pid: %v", errNotRun, err)
				}
				return a
			}
			a.child = int(int32(binary.NativeEndian.Uint32(b[1:])))
		default:
			a.serverErr = fmt.Errorf("%w: an answer tagged %q", errNotRun, b[0])
			return a
		}
	}
	return a
}

// forkWait is how a command started by the fork server is waited for.
func forkWait(pid int) func() (*os.ProcessState, error) {
	return func() (*os.ProcessState, error) {
		p, err := os.FindProcess(pid)
		if err != nil {
			return nil, err
		}
		return p.Wait()
	}
}

// cmdWait is how a command started by os/exec is waited for.
func cmdWait(cmd *exec.Cmd) func() (*os.ProcessState, error) {
	return func() (*os.ProcessState, error) {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return exitErr.ProcessState, nil
		}
		return cmd.ProcessState, err
	}
}
