package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a running QEMU. Its sockets are connected when Start returns.
type Process struct {
	// QMP and Agent are QEMU's connections to the driver: the monitor and
	// the guest agent's virtio-serial port.
	QMP, Agent net.Conn

	cmd    *exec.Cmd
	stdin  *os.File // kept open so QEMU's stdio chardev never sees EOF
	stderr tail
	done   chan struct{}
	err    error

	launcher *launcher // the thread QEMU and its daemons started from
	vfs      *virtiofs // the shares' virtiofsd processes; nil over 9p
	// vfsExited says QEMU was killed because a virtiofsd exited.
	vfsExited atomic.Bool
	// killing says Kill is stopping QEMU: daemons exiting now are expected.
	killing atomic.Bool
}

// Start starts QEMU for cfg and waits for it to connect its sockets. Console
// output (the guest's serial port) is copied to console until QEMU exits.
// QEMU runs in its own process group and is killed if the driver dies
// (PR_SET_PDEATHSIG), so it never outlives the driver. With cfg.FS
// "virtiofs" the shares' virtiofsd processes start first and are supervised
// with QEMU: they die with it, and QEMU is killed if one of them exits.
// With cfg.View they all start in a private mount namespace in which the
// view is mounted (needs CAP_SYS_ADMIN).
func Start(ctx context.Context, cfg Config, console io.Writer) (*Process, error) {
	bin, err := Find(cfg.Binary)
	if err != nil {
		return nil, err
	}
	qmpL, err := listen(cfg.qmpSocket())
	if err != nil {
		return nil, err
	}
	defer qmpL.Close()
	agentL, err := listen(cfg.agentSocket())
	if err != nil {
		return nil, err
	}
	defer agentL.Close()

	p := &Process{done: make(chan struct{})}
	if p.launcher, err = startLauncher(namespaceSetup(cfg)); err != nil {
		return nil, err
	}
	if cfg.FS == "virtiofs" && len(cfg.Shares) > 0 {
		if p.vfs, err = startVirtiofs(cfg, p.launcher); err != nil {
			p.launcher.close()
			return nil, err
		}
	}
	if err := p.start(bin, cfg.Args(), cfg.files(), console); err != nil {
		p.vfs.stop()
		p.launcher.close()
		return nil, err
	}
	if p.QMP, err = p.accept(ctx, qmpL, "qmp"); err == nil {
		p.Agent, err = p.accept(ctx, agentL, "agent")
	}
	if err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func listen(path string) (*net.UnixListener, error) {
	os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict %s: %w", path, err)
	}
	return l, nil
}

func (p *Process) start(bin string, args []string, files []*os.File, console io.Writer) error {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start qemu: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return fmt.Errorf("start qemu: %w", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = stdinR, outW, &p.stderr
	p.cmd.ExtraFiles = files
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.launcher.do(func() { err = p.cmd.Start() })
	stdinR.Close()
	outW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p.stdin = stdinW
	copied := make(chan struct{})
	go func() {
		io.Copy(console, outR)
		outR.Close()
		close(copied)
	}()
	exited := make(chan struct{})
	go func() {
		err := p.cmd.Wait()
		close(exited)
		<-copied // the console's last lines are in before anyone hears of the exit
		p.stdin.Close()
		p.vfs.stop() // they exit when QEMU hangs up; kill any that linger
		p.launcher.close()
		daemons := p.vfs.report(p.vfsExited.Load())
		if err != nil {
			err = fmt.Errorf("qemu exited: %w%s%s", err, p.stderr.String(), daemons)
		} else {
			err = fmt.Errorf("qemu exited%s%s", p.stderr.String(), daemons)
		}
		p.err = err
		close(p.done)
	}()
	go func() {
		// Without its virtiofsd the guest's files hang: end the machine.
		select {
		case <-p.vfs.anyExited():
			if !p.killing.Load() {
				p.vfsExited.Store(true)
				p.cmd.Process.Kill()
			}
		case <-exited:
		}
	}()
	return nil
}

// accept waits for QEMU to connect to l. QEMU connects while it starts, before
// the guest runs; if it exits instead, its error (with stderr) is returned.
func (p *Process) accept(ctx context.Context, l *net.UnixListener, what string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("accept qemu's %s connection: %w", what, r.err)
		}
		return r.c, nil
	case <-p.done:
		// A connection QEMU made before it exited may not have been
		// taken yet: take it, so the boot goes on to read what the guest
		// said (a panic, a reset) and names it, instead of racing the exit.
		l.SetDeadline(time.Now())
		if r := <-ch; r.err == nil {
			return r.c, nil
		}
		// The deadline can stop an Accept that had not yet begun, with
		// the connection still queued: take it without waiting.
		if c := acceptQueued(l); c != nil {
			return c, nil
		}
		l.Close()
		return nil, fmt.Errorf("qemu exited before connecting its %s socket: %w", what, p.err)
	case <-ctx.Done():
		l.Close()
		return nil, fmt.Errorf("wait for qemu's %s connection: %w", what, ctx.Err())
	}
}

// acceptQueued takes a connection already queued on l, without waiting
// (Go's listeners are non-blocking: accept4 says EAGAIN when there is
// none); nil when there is none.
func acceptQueued(l *net.UnixListener) net.Conn {
	raw, err := l.SyscallConn()
	if err != nil {
		return nil
	}
	nfd := -1
	raw.Control(func(fd uintptr) { nfd, _, _ = unix.Accept4(int(fd), unix.SOCK_CLOEXEC) })
	if nfd < 0 {
		return nil
	}
	f := os.NewFile(uintptr(nfd), "qemu connection")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil
	}
	return c
}

// consoleWriteTimeout bounds a write to the guest's serial port. QEMU
// reads its stdin only as fast as the guest's UART takes bytes: a guest
// that reads nothing from ttyS0 fills the 64 KiB pipe, and a writer must
// hear of it rather than hang.
const consoleWriteTimeout = 5 * time.Second

// WriteConsole writes p to the guest's serial port (QEMU's stdin, the
// console chardev's input). It fails once QEMU has exited, and when the
// guest has not taken the bytes within 5 s.
func (p *Process) WriteConsole(b []byte) (int, error) {
	select {
	case <-p.done:
		return 0, fmt.Errorf("write to the serial console: qemu exited")
	default:
	}
	p.stdin.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
	n, err := p.stdin.Write(b)
	if err != nil {
		return n, fmt.Errorf("write to the serial console: %w", err)
	}
	return n, nil
}

// Pid returns QEMU's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when QEMU has exited and its console output is all copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how QEMU exited (with its stderr), once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// ExitedCleanly reports whether QEMU exited with status 0 (the guest
// powered off), once Done is closed.
func (p *Process) ExitedCleanly() bool {
	<-p.done
	return p.cmd.ProcessState.Success()
}

// Kill kills QEMU's process group and waits for it, and its virtiofsd
// processes, to exit. It is idempotent.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		p.killing.Store(true)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	if p.QMP != nil {
		p.QMP.Close()
	}
	if p.Agent != nil {
		p.Agent.Close()
	}
}

// tail keeps the last 4 KiB written to it: QEMU's stderr, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = t.buf[len(t.buf)-tailSize:]
	}
	return len(p), nil
}

// String returns the tail as ": <text>", or "" when nothing was written.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, []byte("?"))))
	if s == "" {
		return ""
	}
	return ": " + s
}
