package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// Result is a finished command.
type Result struct {
	Status int    // exit status; -1 when a signal killed it
	Signal string // the signal, if one killed it
	// Stdout and Stderr are the command's outputs, up to OutputLimit each.
	Stdout, Stderr string
	// StdoutFile and StderrFile name files in the machine's directory that
	// hold the whole output when it was longer than SpillSize (1 MiB); empty
	// for shorter ones. They are removed with a temporary directory (when
	// Config.Dir was empty) at Close.
	StdoutFile, StderrFile string
	// Detached says processes the command left running kept its output
	// open; what they write after the command exits is not captured.
	Detached bool
	Elapsed  time.Duration // measured in the guest
}

// ExecOption changes how a command runs.
type ExecOption func(*execOptions)

type execOptions struct {
	timeout        time.Duration
	user, dir      string
	env            []string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Timeout bounds the command; the guest kills its whole process group at the
// deadline. Zero means the machine's DefaultTimeout.
func Timeout(d time.Duration) ExecOption { return func(o *execOptions) { o.timeout = d } }

// User runs the command as the named guest user.
func User(name string) ExecOption { return func(o *execOptions) { o.user = name } }

// Dir sets the working directory (default: the user's home).
func Dir(dir string) ExecOption { return func(o *execOptions) { o.dir = dir } }

// Env adds KEY=VALUE pairs to the command's environment.
func Env(kv ...string) ExecOption { return func(o *execOptions) { o.env = append(o.env, kv...) } }

// Stdin feeds r to the command's standard input.
func Stdin(r io.Reader) ExecOption { return func(o *execOptions) { o.stdin = r } }

// Stream copies the command's output to stdout and stderr as it arrives, as
// well as returning it. Nil writers are skipped. They must not block. A
// streamed output may be longer than OutputLimit: the writer gets it all,
// Result keeps its first OutputLimit bytes, and it is neither an error nor
// written to a file.
func Stream(stdout, stderr io.Writer) ExecOption {
	return func(o *execOptions) { o.stdout, o.stderr = stdout, stderr }
}

// Execute runs command with sh -c in the guest and returns its exit status
// and output. A non-zero status is not an error; a timeout or a machine that
// goes down is, and so is an output over OutputLimit (an *OutputError). A
// command over the agent channel's 1 MiB request limit fails with an error
// wrapping agentclient.ErrTooLarge; the machine stays up.
func (m *Machine) Execute(ctx context.Context, command string, opts ...ExecOption) (Result, error) {
	var o execOptions
	for _, opt := range opts {
		opt(&o)
	}
	agent, err := m.client(ctx, "command "+shortCommand(command))
	if err != nil {
		return Result{}, err
	}
	return m.exec(ctx, agent, command, o)
}

// exec runs command through agent, which may belong to a machine still
// booting (Setup runs so).
func (m *Machine) exec(ctx context.Context, agent *agentclient.Client, command string, o execOptions) (Result, error) {
	if o.timeout <= 0 {
		o.timeout = m.DefaultTimeout()
	}
	what := "command " + shortCommand(command)
	base := filepath.Join(m.dir, "output", fmt.Sprintf("command-%d", commandSeq.Add(1)))
	stdout, stderr := newCapture(base+".stdout", o.stdout != nil), newCapture(base+".stderr", o.stderr != nil)
	stdio := agentclient.ExecIO{Stdin: o.stdin, Stdout: tee(stdout, o.stdout), Stderr: tee(stderr, o.stderr)}
	hostCtx, cancel := m.hostDeadline(ctx, o.timeout)
	defer cancel()
	res, err := agent.Exec(hostCtx, agentproto.Exec{
		Command: command, Env: o.env, User: o.user, Dir: o.dir, Timeout: o.timeout,
	}, stdio)
	r := Result{Status: res.Exit, Signal: res.Signal, Detached: res.Detached, Elapsed: res.Elapsed}
	m.noteKilled(what, res)
	outErr := r.keep(m.cfg.Name, command, stdout, stderr)
	if err := m.outcome(ctx, hostCtx, what, o.timeout, res, r.Stdout+r.Stderr, err); err != nil {
		return r, err
	}
	return r, outErr
}

// keep fills r's outputs from the captures and returns an *OutputError if
// one was over the limit (stdout's, when both were).
func (r *Result) keep(machine, command string, stdout, stderr *capture) error {
	var first error
	for _, s := range []struct {
		name       string
		c          *capture
		text, file *string
	}{{"stdout", stdout, &r.Stdout, &r.StdoutFile}, {"stderr", stderr, &r.Stderr, &r.StderrFile}} {
		var size int64
		var ferr error
		*s.text, *s.file, size, ferr = s.c.close()
		if size > int64(s.c.limit) && !s.c.streamed && first == nil {
			first = &OutputError{Machine: machine, Command: command, Stream: s.name, Size: size,
				Limit: s.c.limit, File: *s.file, FileErr: ferr}
		}
	}
	return first
}

// hostDeadline bounds an agent call on the host. The guest enforces the
// call's timeout; the host's deadline is a margin later and only fires when
// the guest stopped answering.
func (m *Machine) hostDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, timeout+m.scale(5*time.Second))
}

// outcome is the error of an agent call (a command or a wait), in the
// machine's terms: the guest stopped answering (hostCtx passed first), the
// caller stopped it (ctx ended), the machine went down, the agent refused
// it, or the guest's own timeout passed. output is what it printed so far.
func (m *Machine) outcome(ctx, hostCtx context.Context, what string, timeout time.Duration, res agentproto.Result, output string, err error) error {
	switch {
	case err != nil && ctx.Err() == nil && hostCtx.Err() != nil:
		return &TimeoutError{Machine: m.cfg.Name, What: what + " (the guest stopped answering)",
			Timeout: timeout, Output: output, Console: m.console.ShownTail(consoleTail), Services: m.exitedServices()}
	case err != nil && ctx.Err() != nil:
		return m.stoppedError(ctx, what, output)
	case err != nil:
		return m.callError(what, err)
	case res.Error != "":
		return errors.New(withTails(fmt.Sprintf("%s: %s: %s", m.cfg.Name, what, res.Error), output, m.console.ShownTail(consoleTail)))
	case res.TimedOut:
		return &TimeoutError{Machine: m.cfg.Name, What: what, Timeout: timeout,
			Output: output, Console: m.console.ShownTail(consoleTail), Services: m.servicesAtTimeout(ctx)}
	}
	return nil
}

func tee(buf *capture, w io.Writer) io.Writer {
	if w == nil {
		return buf
	}
	return io.MultiWriter(buf, w)
}

// Succeed runs command and returns its standard output; a non-zero exit is an
// *ExitError with both outputs.
func (m *Machine) Succeed(ctx context.Context, command string, opts ...ExecOption) (string, error) {
	r, err := m.Execute(ctx, command, opts...)
	if err == nil && r.Status != 0 {
		err = &ExitError{Machine: m.cfg.Name, Command: command, Status: r.Status, Signal: r.Signal,
			Stdout: r.Stdout, Stderr: r.Stderr, WantSuccess: true}
	}
	return r.Stdout, err
}

// Fail runs command and returns its standard output; a zero exit is an
// *ExitError.
func (m *Machine) Fail(ctx context.Context, command string, opts ...ExecOption) (string, error) {
	r, err := m.Execute(ctx, command, opts...)
	if err == nil && r.Status == 0 {
		err = &ExitError{Machine: m.cfg.Name, Command: command, Stdout: r.Stdout, Stderr: r.Stderr}
	}
	return r.Stdout, err
}

// wait asks the agent to wait for a condition, in the guest.
func (m *Machine) wait(ctx context.Context, what string, w agentproto.Wait) (agentproto.Result, error) {
	if w.Timeout <= 0 {
		w.Timeout = m.DefaultTimeout()
	}
	agent, err := m.client(ctx, what)
	if err != nil {
		return agentproto.Result{}, err
	}
	hostCtx, cancel := m.hostDeadline(ctx, w.Timeout)
	defer cancel()
	res, err := agent.Wait(hostCtx, w)
	return res, m.outcome(ctx, hostCtx, what, w.Timeout, res, res.Output, err)
}

// WaitUntilSucceeds runs command until it exits 0 and returns its output.
// Zero timeout means DefaultTimeout.
func (m *Machine) WaitUntilSucceeds(ctx context.Context, command string, timeout time.Duration) (string, error) {
	res, err := m.wait(ctx, fmt.Sprintf("wait until %q succeeds", command),
		agentproto.Wait{Kind: agentproto.WaitCommandOK, Command: command, Timeout: timeout})
	return res.Output, err
}

// WaitUntilFails runs command until it exits non-zero and returns its output.
func (m *Machine) WaitUntilFails(ctx context.Context, command string, timeout time.Duration) (string, error) {
	res, err := m.wait(ctx, fmt.Sprintf("wait until %q fails", command),
		agentproto.Wait{Kind: agentproto.WaitCommandFails, Command: command, Timeout: timeout})
	return res.Output, err
}

// WaitForUnit waits until a unit is active. In a machine whose init is
// systemd the agent asks systemd, event driven, for the unit as written
// ("nfs-server", "multi-user.target"), or with a user for that user's unit
// (systemctl --user; the user's manager is started first, as Systemctl
// does, within the same timeout); it fails at once when the unit fails, is inactive with no job
// pending, or does not exist, with the unit's status and journal tail.
//
// In fast mode it waits until the declared service is ready (its port
// open, its file present or its log line seen); "web.service" names the
// service "web". A service that has exited and will not be restarted
// fails it at once, with the service's last output lines. A system target
// NixOS tests wait for ("default.target", "multi-user.target", ...; see
// SystemTarget) is reached once the machine is up and every declared
// service is ready. A fast-mode machine has no user units: a user is an
// error wrapping ErrNoSystemd.
func (m *Machine) WaitForUnit(ctx context.Context, unit, user string, timeout time.Duration) error {
	if m.cfg.Systemd() {
		return m.waitSystemdUnit(ctx, unit, user, timeout)
	}
	if user != "" {
		return m.needSystemd("wait for " + unitLabel(unit, user))
	}
	what, service := fmt.Sprintf("wait for service %s", unit), UnitService(unit)
	if SystemTarget(unit) {
		// The agent waits for every service when none is named.
		what, service = "wait for "+unit+" (every service ready)", ""
	}
	_, err := m.wait(ctx, what, agentproto.Wait{Kind: agentproto.WaitUnit, Path: service, Timeout: timeout})
	return err
}

// waitSystemdUnit is WaitForUnit in a machine whose init is systemd. The
// user's manager answers for the user's units, so it is started first,
// within the same timeout: starting it takes 6.8 s under TCG when all is
// well, and a systemd job timeout (90 s) when it is not.
func (m *Machine) waitSystemdUnit(ctx context.Context, unit, user string, timeout time.Duration) error {
	what := "wait for " + unitLabel(unit, user)
	if timeout <= 0 {
		timeout = m.DefaultTimeout()
	}
	left := timeout
	if user != "" {
		start := time.Now()
		if _, err := m.userManager(ctx, user, timeout); err != nil {
			var te *TimeoutError
			if errors.As(err, &te) {
				te.What, te.Timeout = what+" (starting the manager of user "+user+")", timeout
			}
			return err
		}
		if left = timeout - time.Since(start); left <= 0 {
			return &TimeoutError{Machine: m.cfg.Name, What: what + " (starting the manager of user " + user + ")",
				Timeout: timeout, Console: m.console.ShownTail(consoleTail)}
		}
	}
	_, err := m.wait(ctx, what, agentproto.Wait{Kind: agentproto.WaitUnit, Path: unit, User: user, Timeout: left})
	return err
}

// systemTargets are the systemd targets NixOS tests wait for before they
// start, which in fast mode mean "booted, with every service ready".
var systemTargets = []string{"default.target", "multi-user.target", "basic.target",
	"sysinit.target", "network.target", "network-online.target"}

// SystemTarget reports whether WaitForUnit takes name as one of the system
// targets rather than a service.
func SystemTarget(name string) bool { return slices.Contains(systemTargets, name) }

// UnitService is the service a unit name stands for: "web.service" and
// "web" are both the service "web".
func UnitService(name string) string { return strings.TrimSuffix(name, ".service") }

// WaitForFile waits until path exists in the guest.
func (m *Machine) WaitForFile(ctx context.Context, path string, timeout time.Duration) error {
	_, err := m.wait(ctx, fmt.Sprintf("wait for file %s", path),
		agentproto.Wait{Kind: agentproto.WaitFile, Path: path, Timeout: timeout})
	return err
}

// WaitForOpenPort waits until a TCP connection to addr:port succeeds in the
// guest. An empty addr means localhost.
func (m *Machine) WaitForOpenPort(ctx context.Context, addr string, port int, timeout time.Duration) error {
	_, err := m.wait(ctx, fmt.Sprintf("wait for open port %s:%d", addrOrLocalhost(addr), port),
		agentproto.Wait{Kind: agentproto.WaitPortOpen, Addr: addr, Port: port, Timeout: timeout})
	return err
}

// WaitForClosedPort waits until a TCP connection to addr:port is refused.
func (m *Machine) WaitForClosedPort(ctx context.Context, addr string, port int, timeout time.Duration) error {
	_, err := m.wait(ctx, fmt.Sprintf("wait for closed port %s:%d", addrOrLocalhost(addr), port),
		agentproto.Wait{Kind: agentproto.WaitPortClosed, Addr: addr, Port: port, Timeout: timeout})
	return err
}

func addrOrLocalhost(addr string) string {
	if addr == "" {
		return "localhost"
	}
	return addr
}

// WaitForOpenUnixSocket waits until a connection to the unix socket at path
// succeeds.
func (m *Machine) WaitForOpenUnixSocket(ctx context.Context, path string, timeout time.Duration) error {
	return m.WaitForUnixSocket(ctx, path, false, timeout)
}

// WaitForUnixSocket is WaitForOpenUnixSocket for a stream socket or, with
// datagram, a datagram socket (NixOS's is_datagram).
func (m *Machine) WaitForUnixSocket(ctx context.Context, path string, datagram bool, timeout time.Duration) error {
	kind, what := agentproto.WaitUnixSocket, "unix socket"
	if datagram {
		kind, what = agentproto.WaitUnixDatagram, "unix datagram socket"
	}
	_, err := m.wait(ctx, fmt.Sprintf("wait for %s %s", what, path),
		agentproto.Wait{Kind: kind, Path: path, Timeout: timeout})
	return err
}

// WaitForConsoleText waits for a console line matching the regular expression
// and returns it. As in NixOS, each match consumes the console up to the
// matching line: the next call looks only at later lines.
func (m *Machine) WaitForConsoleText(ctx context.Context, pattern string, timeout time.Duration) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", fmt.Errorf("%s: wait for console text: %w", m.cfg.Name, err)
	}
	if timeout <= 0 {
		timeout = m.DefaultTimeout()
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m.mu.Lock()
	from := m.cursor
	m.mu.Unlock()
	line, next, err := m.console.waitFor(waitCtx, re, from)
	if err != nil {
		if ctx.Err() != nil {
			return "", m.stoppedError(ctx, fmt.Sprintf("wait for console text %q", pattern), "")
		}
		return "", &TimeoutError{Machine: m.cfg.Name, What: fmt.Sprintf("wait for console text %q", pattern),
			Timeout: timeout, Console: m.console.ShownTail(consoleTail), Services: m.servicesAtTimeout(ctx)}
	}
	m.mu.Lock()
	m.cursor = max(m.cursor, next)
	m.mu.Unlock()
	return line, nil
}

// CopyFromHost copies the host file or directory src to dst in the guest.
func (m *Machine) CopyFromHost(ctx context.Context, src, dst string) error {
	what := fmt.Sprintf("copy %s from the host to %s", src, dst)
	agent, err := m.client(ctx, what)
	if err != nil {
		return err
	}
	if err := agent.CopyIn(ctx, src, dst); err != nil {
		return m.callError(what, err)
	}
	return nil
}

// CopyFromMachine copies the guest file or directory src to dst on the host.
// Nothing in the guest's stream can write outside dst.
func (m *Machine) CopyFromMachine(ctx context.Context, src, dst string) error {
	what := fmt.Sprintf("copy %s from the machine to %s", src, dst)
	agent, err := m.client(ctx, what)
	if err != nil {
		return err
	}
	if err := agent.CopyOut(ctx, src, dst); err != nil {
		return m.callError(what, err)
	}
	return nil
}

// Sleep waits d on the host, or until ctx ends.
func (m *Machine) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
