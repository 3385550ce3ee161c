// Package machine owns the Machine: one QEMU virtual machine booted from the
// host's kernel and root, and the API a test drives it with (Succeed,
// WaitForOpenPort, Shutdown, ...). The names and semantics are the NixOS test
// driver's, in Go spelling.
//
// A Machine starts lazily: the first call that needs the guest boots it, as
// in NixOS. When the machine dies unexpectedly (QEMU exits, the guest
// panics, the agent dies) every call in flight fails at once with a
// *DownError that carries the console's last lines, and later calls fail the
// same way until Start is called again.
package machine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/hostview"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/spec"
)

// Config is a machine's declaration (spec.Machine, checked by New with
// spec's one Check) and the wiring a caller adds around it: what to boot,
// where its files go, whom it tells what it does, and its network cards.
type Config struct {
	// Machine is the declaration. Zero MemoryMiB and CPUs mean the
	// defaults (512 MiB, 1 CPU).
	spec.Machine
	Boot *Boot // required: what to boot (PrepareBoot)
	// Dir receives the console log and the private sockets; empty: a new
	// temporary directory, removed by Close.
	Dir string
	// Logf reports what the machine does (boot, shutdown); nil: silent.
	Logf func(format string, args ...any)
	// OnBoot hears each boot start and end (Start, Reboot); nil: they are
	// told through Logf. It is called on the booting goroutine.
	OnBoot func(BootNote)
	// OnStop hears each stop of a machine that was up: asked for
	// (Shutdown, Reboot, Crash, Close) or not (it went down: Err says
	// why); nil: none. It is called once the QEMU process has exited,
	// before a later boot's OnBoot.
	OnStop func(StopNote)
	// OnConsole receives each console line as it arrives; nil: none. It is
	// called from the console's reading goroutine and must not block: a
	// blocked reader stalls the guest's serial console, and so the guest.
	// Hand lines to a queue with its own writer (report.Queue).
	OnConsole func(Line)
	// OnServiceExit hears each exit of a declared service of a fast-mode
	// machine, as the agent tells it (services.go); nil: told through
	// Logf, which must then not block either. It is
	// called on the agent channel's reading goroutine and must not block:
	// every call to the machine waits while it runs. Hand it to a queue.
	OnServiceExit func(agentproto.ServiceExit)
	// BootTimeout bounds the wait for the agent when nothing else ends a
	// boot sooner; zero: 12 s, scaled for the accelerator (60 s under TCG).
	BootTimeout time.Duration
	// NICs are the machine's cards on the lab's virtual switches (package
	// lab makes them); the machine owns their files and closes them.
	NICs []NIC
	// Hosts are written to the guest's /etc/hosts.
	Hosts []agentproto.HostEntry
	// DiskImage is the machine's own disk image, its writable root (see
	// rootdisk.go), when the caller keeps it (ApplyState): made at the
	// first boot if missing, never removed. Empty: root.img in Dir, made
	// at the first boot and removed by Close.
	DiskImage string
	// RootImage is the machine image the guest's root is made of (image.go,
	// docs/images.md); nil: the host's root.
	RootImage *RootImage
	// Coverage collects the guest's coverage data; zero: none.
	Coverage Coverage
}

// Share is a host directory shared into the guest.
type Share = spec.Share

// Machine is one VM. Its methods are safe for concurrent use: many commands
// may run on one machine at once.
type Machine struct {
	cfg     Config
	dir     string
	ownDir  bool
	log     *os.File
	console *console

	startMu sync.Mutex // serializes Start, Shutdown, Reboot, Crash

	mu   sync.Mutex
	proc *qemu.Process
	// booting and bootAgent are the process and agent a boot is setting up
	// (setup steps run on them) before they become proc and agent.
	booting    *qemu.Process
	bootAgent  *agentclient.Client
	agent      *agentclient.Client
	qmp        *qmp.Client
	hello      agentproto.Hello
	bootTime   time.Duration
	expected   bool   // the current process is meant to stop (Shutdown, Crash)
	down       error  // why the machine stopped when nobody asked it to
	downReason string // what the console said about it (DownError.Reason)
	started    bool   // Start has been called at least once
	starting   bool   // a boot is under way (State says "booting")
	cursor     int    // console position for WaitForConsoleText
	diskMade   bool   // the disk path is this machine's: a stale one was removed, it makes the disk (diskImage, makeDisk)
	forwards   []qemu.Forward
	// picks are the guest ports of declared forwards whose host port is
	// 0, not yet given one (pickForwards, at the first boot).
	picks []int
	// supervised is closed when the supervisor of the last process has
	// recorded its exit; a new boot waits for it, so that the stop is
	// told before the boot, and so do client, NeedsBoot and Status once
	// that process exited (settledDown). Set under startMu and mu.
	supervised chan struct{}
	// onExited and onAwaitSupervise are tests' hooks (nil outside
	// tests): supervise calls onExited when QEMU exited, before it
	// records the exit; settledDown calls onAwaitSupervise before it
	// waits for that record.
	onExited, onAwaitSupervise func()
	// partialReasons say why the coverage data may miss counts (see
	// Coverage), in the order they happened.
	partialReasons []string
	// serviceExits are the last exit of each service that exited since
	// the last boot, in the order they ended (services.go).
	serviceExits []agentproto.ServiceExit
}

// New returns a machine that is not started yet. Its declaration is checked
// first (spec.Machine.Check, against the host and the kernel it boots), and
// every problem is reported at once, before anything is created on disk.
func New(cfg Config) (*Machine, error) {
	if cfg.Boot == nil {
		return nil, fmt.Errorf("new machine %s: no boot configuration", cfg.Name)
	}
	cfg.Machine = cfg.WithDefaults()
	if err := spec.Join(cfg.Check(cfg.Boot.Host())); err != nil {
		return nil, fmt.Errorf("new machine %s: %w", cfg.Name, err)
	}
	if img := cfg.RootImage; img != nil {
		if err := img.check(); err != nil {
			return nil, fmt.Errorf("new machine %s: %w", cfg.Name, err)
		}
	}
	m := &Machine{cfg: cfg, dir: cfg.Dir}
	m.declareForwards()
	if m.dir == "" {
		dir, err := makeTempDir("vmlab-" + cfg.Name + "-")
		if err != nil {
			return nil, fmt.Errorf("new machine %s: %w", cfg.Name, err)
		}
		m.dir, m.ownDir = dir, true
	} else if err := privateDir(m.dir); err != nil {
		return nil, fmt.Errorf("new machine %s: %w", cfg.Name, err)
	}
	log, err := os.OpenFile(filepath.Join(m.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("new machine %s: %w", cfg.Name, err)
	}
	m.log = log
	m.console = newConsole(log, cfg.OnConsole)
	return m, nil
}

// Name returns the machine's name.
func (m *Machine) Name() string { return m.cfg.Name }

// Dir returns the directory with the machine's console log.
func (m *Machine) Dir() string { return m.dir }

// QEMUPid returns the QEMU process's ID, or 0 when the machine is not running.
func (m *Machine) QEMUPid() int {
	if !m.running() {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc.Pid()
}

// ConsoleTail returns the last n console lines.
func (m *Machine) ConsoleTail(n int) []string { return m.console.Tail(n) }

// ConsoleLog returns the console so far, one line each (the last 100,000
// lines; the log file in Dir keeps them all).
func (m *Machine) ConsoleLog() []string { return m.console.Tail(maxConsoleLines) }

// BootTime returns how long the last Start took, from QEMU's start to the
// agent's hello.
func (m *Machine) BootTime() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootTime
}

// Hello returns what the agent reported at its last boot, including the
// guest's boot milestones.
func (m *Machine) Hello() agentproto.Hello {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hello
}

// scale multiplies a default timeout for the accelerator.
func (m *Machine) scale(d time.Duration) time.Duration {
	return d * time.Duration(m.cfg.Boot.Accel.TimeoutScale())
}

// DefaultTimeout is the timeout of commands and waits that name none: NixOS's
// 900 s under TCG, a fifth of it under KVM.
func (m *Machine) DefaultTimeout() time.Duration { return m.scale(180 * time.Second) }

// bootTimeout bounds a boot from QEMU's start to the agent's hello when
// nothing else (QEMU's exit, a panic) ends it sooner. Measured: 4.5 s under
// TCG.
func (m *Machine) bootTimeout() time.Duration {
	if m.cfg.BootTimeout > 0 {
		return m.cfg.BootTimeout
	}
	return m.scale(12 * time.Second)
}

// Start boots the machine and waits for its agent. It is a no-op when the
// machine runs. A guest that panics, a QEMU that exits, an agent that never
// answers: each ends Start with a *DownError or *TimeoutError showing the
// console's last lines.
func (m *Machine) Start(ctx context.Context) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	return m.startLocked(ctx)
}

func (m *Machine) startLocked(ctx context.Context) error {
	if m.running() {
		return nil
	}
	if m.supervised != nil {
		<-m.supervised
	}
	m.noteBoot(BootNote{})
	if b := m.cfg.Boot; b != nil && b.forkNote != "" {
		b.forkNoteOnce.Do(func() { m.logf("%s", b.forkNote) })
	}
	start := time.Now()
	m.setStarting(true)
	err := m.boot(ctx, start)
	m.setStarting(false)
	note := BootNote{Done: true, Took: time.Since(start), Err: err}
	if err == nil {
		note.Took, note.Stages = m.BootTime(), stages(m.Hello().Stages)
	} else {
		m.partial("did not boot: %v", err) // what it ran was stopped with it
	}
	m.noteBoot(note)
	return err
}

// BootNote is what Config.OnBoot hears: a boot that starts, or one that
// ended (Done) after Took, with the guest's uptime at each stage of its
// init when it booted, or why it did not.
type BootNote struct {
	Done   bool
	Took   time.Duration
	Stages string // "init 1.647s, modules 1.898s, ..."
	Err    error
}

func (m *Machine) noteBoot(n BootNote) {
	switch {
	case m.cfg.OnBoot != nil:
		m.cfg.OnBoot(n)
	case !n.Done:
		m.logf("booting")
	case n.Err == nil:
		m.logf("up in %.2fs (guest uptime at %s)", n.Took.Seconds(), n.Stages)
	}
}

// boot starts QEMU and waits for the agent, which it configures.
func (m *Machine) boot(ctx context.Context, start time.Time) error {
	m.console.newBoot()
	view, err := m.hostView()
	if err != nil {
		return m.downError("start", err)
	}
	image, newDisk, err := m.diskImage() // made after the snapshot's turn
	if err != nil {
		return fmt.Errorf("%s: start: %w", m.cfg.Name, err)
	}
	if err := m.busyForward(); err != nil {
		return fmt.Errorf("%s: start: %w", m.cfg.Name, err)
	}
	initrd, err := m.cfg.Boot.InitramfsFor(m.cfg.Display)
	if err != nil {
		return fmt.Errorf("%s: start: %w", m.cfg.Name, err)
	}
	if err := m.prepareCoverage(); err != nil {
		return fmt.Errorf("%s: start: %w", m.cfg.Name, err)
	}
	qcfg := m.qemuConfig(view, image, initrd)
	cold := qcfg
	restore := m.restoreFrom(ctx, &qcfg, newDisk) // nil: a cold boot (snapshot.go)
	if newDisk {
		if err := m.makeDisk(image); err != nil {
			if restore != nil {
				restore.Close()
			}
			return fmt.Errorf("%s: start: %w", m.cfg.Name, err)
		}
	}
	l, err := m.launch(ctx, qcfg, restore)
	var failed *restoreFailed
	if errors.As(err, &failed) {
		// A restore that does not reach the agent's hello is the
		// snapshot's failure, not the machine's: set it aside (the next
		// machine of the shape takes it again) and boot this one cold.
		m.logf("snapshot %s: cold boot: restore failed: %v", restore.key, failed.err)
		restore.setAside(m.logf)
		restore.Close()
		m.console.newBoot()
		l, err = m.launch(ctx, cold, nil)
	}
	if err != nil {
		if restore != nil {
			restore.Close() // QEMU may not have started
		}
		return err
	}
	defer l.cancel()
	proc, q, agent, hello, bootCtx := l.proc, l.qmp, l.agent, l.hello, l.ctx
	if err := m.configureNetwork(bootCtx, agent); err != nil {
		q.Close()
		return m.bootFailed(ctx, proc, agent, err)
	}
	// The guest's host keys must be there before a setup step or a
	// service (sshd) reads them.
	if err := view.Wait(); err != nil {
		q.Close()
		return m.bootFailed(ctx, proc, agent, fmt.Errorf("prepare the host view: %w", err))
	}
	if err := m.applySetup(ctx, agent); err != nil {
		q.Close()
		return m.bootFailed(ctx, proc, agent, err)
	}
	// A systemd guest is always sent its units: its agent installs them
	// and hands over to systemd, whose agent continues the session.
	if m.cfg.Systemd() {
		if err := agent.Units(ctx, m.cfg.Services, m.cfg.Units, m.cfg.Enable); err != nil {
			q.Close()
			return m.bootFailed(ctx, proc, agent, fmt.Errorf("start units: %w", err))
		}
		if hello, err = m.handover(ctx, proc, agent); err != nil {
			q.Close()
			return m.bootFailed(ctx, proc, agent, err)
		}
	} else if len(m.cfg.Services) > 0 {
		if err := agent.Services(ctx, m.cfg.Services); err != nil {
			q.Close()
			return m.bootFailed(ctx, proc, agent, fmt.Errorf("start services: %w", err))
		}
	}
	m.mu.Lock()
	m.proc, m.agent, m.qmp, m.hello = proc, agent, q, hello
	m.booting, m.bootAgent = nil, nil
	m.bootTime = time.Since(start)
	m.expected, m.down, m.started = false, nil, true
	m.supervised = make(chan struct{})
	supervised := m.supervised
	m.mu.Unlock()
	go m.supervise(proc, agent, q, supervised)
	return nil
}

// handover waits for a systemd guest's agent to say hello again, as
// systemd's unit, within a boot's timeout from now (setup took what it
// took) or until QEMU exits. Its stages are the whole boot's.
func (m *Machine) handover(parent context.Context, proc *qemu.Process, agent *agentclient.Client) (agentproto.Hello, error) {
	ctx, cancel := context.WithTimeout(parent, m.bootTimeout())
	defer cancel()
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	hello, err := agent.Handover(ctx)
	if errors.Is(err, context.Canceled) && parent.Err() == nil {
		// QEMU's exit canceled the wait, maybe before its closed channel
		// reached the client: the same end, said the same way.
		err = fmt.Errorf("qemu exited before systemd started the agent: %w", agentclient.ErrClosed)
	}
	if err == nil && hello.Version != agentproto.Version {
		err = fmt.Errorf("systemd's agent speaks protocol %d, want %d: the agent copy in /run/vmlab is stale", hello.Version, agentproto.Version)
	}
	if err != nil {
		return hello, fmt.Errorf("wait for the agent under systemd: %w", err)
	}
	return hello, nil
}

// bootFailed cleans up a failed boot and explains it.
func (m *Machine) bootFailed(ctx context.Context, proc *qemu.Process, agent *agentclient.Client, err error) error {
	m.mu.Lock()
	m.booting, m.bootAgent = nil, nil
	m.mu.Unlock()
	// The agent may have answered with the failure (a setup step failed, a
	// service would not start): the machine is up, so the error is the
	// answer itself, at once. An explained DownError is kept as it is.
	var down *DownError
	// A canceled boot context with the caller's still live means QEMU
	// exited (boot cancels it then), not that the agent answered.
	answered := agent != nil && ctx.Err() == nil && !errors.As(err, &down) &&
		!errors.Is(err, agentclient.ErrClosed) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, context.Canceled)
	// A channel QEMU closed means QEMU is exiting: wait for the exit so the
	// error carries its status and stderr. Nothing else needs a wait.
	exited := isDone(proc) || brokeByExit(err) && m.awaitExit(proc)
	proc.Kill()
	if agent != nil {
		agent.Close()
	}
	m.console.Flush()
	switch {
	case down != nil:
		return err
	case answered:
		return errors.New(withTails(fmt.Sprintf("%s: boot: %v", m.cfg.Name, err), "", m.console.ShownTail(consoleTail)))
	case exited:
		// err names the step that was under way (set up the machine,
		// configure network, ...).
		return m.exitError("boot: "+err.Error(), proc)
	case ctx.Err() != nil:
		return m.stoppedError(ctx, "boot", "")
	case errors.Is(err, context.DeadlineExceeded):
		return &TimeoutError{Machine: m.cfg.Name, What: "boot (waiting for the agent)",
			Timeout: m.bootTimeout(), Console: m.console.ShownTail(consoleTail)}
	}
	return m.downError("boot", err)
}

// brokeByExit reports whether err says QEMU's end of a channel went away:
// the agent's socket closed (not by a malformed frame, which is the
// guest's fault while QEMU runs on) or the QMP socket ended. QEMU holds
// both sockets until its process ends, so its exit follows.
func brokeByExit(err error) bool {
	if errors.Is(err, agentproto.ErrMalformed) {
		return false
	}
	return errors.Is(err, agentclient.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exitGrace bounds the wait for QEMU's exit once its socket closed. The
// exit follows the close within milliseconds (a SIGKILLed QEMU is reported
// in 0.05 s); the bound only matters for a QEMU stuck in its teardown.
const exitGrace = 5 * time.Second

// awaitExit waits for proc's exit, up to exitGrace, and says whether it
// exited.
func (m *Machine) awaitExit(proc *qemu.Process) bool {
	t := time.NewTimer(exitGrace)
	defer t.Stop()
	select {
	case <-proc.Done():
		return true
	case <-t.C:
		m.logf("qemu closed its socket but had not exited after %v", exitGrace)
		return false
	}
}

func isDone(proc *qemu.Process) bool {
	select {
	case <-proc.Done():
		return true
	default:
		return false
	}
}

// stages formats the guest's boot milestones: "init 1.21s, modules 1.35s, ...".
func stages(st []agentproto.Stage) string {
	parts := make([]string, len(st))
	for i, s := range st {
		parts[i] = fmt.Sprintf("%s %.3fs", s.Name, s.Uptime.Seconds())
	}
	return strings.Join(parts, ", ")
}

// supervise waits for QEMU to exit and records why, unless someone asked for
// it. Closing the agent client fails every call in flight at once.
// A stop nobody asked for is told to OnStop here; the callers that ask
// for one tell it themselves (noteStop), after the exit.
func (m *Machine) supervise(proc *qemu.Process, agent *agentclient.Client, q *qmp.Client, done chan struct{}) {
	defer close(done)
	<-proc.Done()
	if m.onExited != nil {
		m.onExited()
	}
	m.console.Flush()
	m.mu.Lock()
	unasked := !m.expected && m.proc == proc
	if unasked {
		m.down, m.downReason = proc.Err(), m.console.failure(proc.ExitedCleanly())
		m.logf("went down: %v", m.down)
	}
	down, reason := m.down, m.downReason
	m.mu.Unlock()
	switch {
	case !unasked:
	case reason == "" && proc.ExitedCleanly():
		// A fast-mode guest that powers itself off (poweroff -f: no
		// init but the agent to ask) stops none of its processes
		// first; systemd stops its units.
		if !m.cfg.Systemd() {
			m.partial("powered itself off without stopping its processes")
		}
	default:
		m.partial("went down: %s", cmp.Or(reason, fmt.Sprint(down)))
	}
	switch {
	case !unasked:
	case reason == "" && proc.ExitedCleanly():
		m.noteStop(StopNote{}) // the guest powered itself off
	case reason != "":
		m.noteStop(StopNote{Err: fmt.Errorf("%s; %w", reason, down)})
	default:
		m.noteStop(StopNote{Err: down})
	}
	agent.Close()
	q.Close()
}

// StopNote is what Config.OnStop hears: a machine that was up stopped,
// because it was asked to or powered itself off (Err nil), or because it
// went down: Err says why, as the console and QEMU tell it (`kernel panic
// "..."; qemu exited`).
type StopNote struct {
	Err error
}

func (m *Machine) noteStop(n StopNote) {
	if m.cfg.OnStop != nil {
		m.cfg.OnStop(n)
	}
}

// NeedsBoot reports whether the next call would boot the machine: it was
// never started or was stopped on purpose (not died).
func (m *Machine) NeedsBoot() bool {
	_, down := m.settledDown()
	return down == nil && !m.running()
}

// settledDown returns why the machine went down (nil: it did not, or it
// was stopped on purpose), once the exit of its last QEMU, when it
// exited, has been recorded by its supervisor. A call that failed with
// that exit returns before the supervisor records it, so the call after
// would otherwise find the machine neither running nor down, and boot it.
func (m *Machine) settledDown() (reason string, down error) {
	m.mu.Lock()
	proc, supervised := m.proc, m.supervised
	m.mu.Unlock()
	if proc != nil && supervised != nil && isDone(proc) {
		if m.onAwaitSupervise != nil {
			m.onAwaitSupervise()
		}
		<-supervised
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.downReason, m.down
}

// running reports whether a QEMU process is up.
func (m *Machine) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.Done():
		return false
	default:
		return true
	}
}

// client returns the agent client, booting the machine if it was never
// started or was shut down on purpose. A machine that died returns its
// DownError instead.
func (m *Machine) client(ctx context.Context, what string) (*agentclient.Client, error) {
	if reason, down := m.settledDown(); down != nil {
		return nil, m.downBecause(what, down, reason)
	}
	if !m.running() {
		if err := m.Start(ctx); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agent, nil
}

// callError turns an agent call's error into the machine's terms. A
// channel QEMU closed means the VM went down: the error says why, with
// QEMU's exit status. A channel that broke while QEMU runs (a malformed
// frame) cannot drive the machine any more, so the machine is stopped.
// During a boot (setup steps) the booting process stands in for the
// machine's, and bootFailed stops it.
func (m *Machine) callError(what string, err error) error {
	if !errors.Is(err, agentclient.ErrClosed) {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	proc, booting := m.procOf(err)
	if proc == nil {
		return m.downError(what, err)
	}
	if brokeByExit(err) && m.awaitExit(proc) {
		return m.exitError(what, proc)
	}
	if booting {
		proc.Kill()
		return m.downError(what, err)
	}
	m.mu.Lock()
	m.down, m.downReason = err, ""
	m.mu.Unlock()
	m.Crash()
	return m.downError(what, err)
}

// procOf returns the process whose agent failed a call with err: the
// booting one when err is its agent's channel error (the agent client hands
// every failed call the same error value), else the machine's.
func (m *Machine) procOf(err error) (proc *qemu.Process, booting bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bootAgent != nil {
		if bootErr := m.bootAgent.Err(); bootErr != nil && errors.Is(err, bootErr) {
			return m.booting, true
		}
	}
	return m.proc, false
}

// stoppedError is the error of a call whose context ended before it did.
func (m *Machine) stoppedError(ctx context.Context, what, output string) error {
	return &StoppedError{Machine: m.cfg.Name, What: what, Cause: context.Cause(ctx), Err: ctx.Err(),
		Output: output, Console: m.console.ShownTail(consoleTail)}
}

// downError is the error of a call that found the machine down.
func (m *Machine) downError(what string, cause error) error {
	return m.downBecause(what, cause, m.console.failure(false))
}

// exitError is the error of a call that found proc's QEMU exited: the
// console names what happened (a panic, a triple fault).
func (m *Machine) exitError(what string, proc *qemu.Process) error {
	return m.downBecause(what, proc.Err(), m.console.failure(proc.ExitedCleanly()))
}

func (m *Machine) downBecause(what string, cause error, reason string) error {
	return &DownError{Machine: m.cfg.Name, What: what, Reason: reason, Cause: cause, Console: m.console.ShownTail(consoleTail)}
}

func (m *Machine) logf(format string, args ...any) {
	if m.cfg.Logf != nil {
		m.cfg.Logf("%s: "+format, append([]any{m.cfg.Name}, args...)...)
	}
}

// hostView prepares what the guest sees of the host (package hostview) in
// the machine's directory, so a machine keeps its host keys and machine-id
// across reboots. Without root there is none: QEMU then reads the host as
// the user running vmlab, who cannot read the host's secrets either (a Go
// program, being threaded, cannot enter a user namespace to mount one).
// Root without CAP_SYS_ADMIN fails the boot in qemu.Start rather than let a
// root QEMU export the host's secrets.
//
// An image machine sees none of the host's root (imageLayout shares only
// the module tree): it has no view, and no host keys are generated for it.
func (m *Machine) hostView() (*hostview.View, error) {
	if os.Geteuid() != 0 || m.cfg.RootImage != nil {
		return nil, nil
	}
	return hostview.Prepare("/", m.hostViewDir())
}

// qemuConfig assembles QEMU's configuration and the guest's boot config.
func (m *Machine) qemuConfig(view *hostview.View, image, initrd string) qemu.Config {
	b := m.cfg.Boot
	shares, boot := rootLayout(m.cfg.Shares, b.FS, view)
	if m.cfg.RootImage != nil {
		shares, boot = imageLayout(m.cfg.RootImage, m.cfg.Shares, b.FS, b.Kernel.Modules, b.Kernel.Version)
	}
	shares = m.coverageShare(shares, &boot)
	boot.Hostname = m.cfg.Name
	if m.cfg.Systemd() {
		boot.Init = spec.InitSystemd
	}
	disk, rootDisk := m.qemuDisk(image)
	boot.Disk = rootDisk
	boot.Display = m.cfg.Display
	var rootImage *qemu.Disk
	if m.cfg.RootImage != nil {
		rootImage = qemuImage(m.cfg.RootImage)
	}
	return qemu.Config{
		FreePageReporting: true,
		Image:             rootImage,
		Display:           m.cfg.Display,
		Screen:            b.Screen,
		Name:              m.cfg.Name,
		Disk:              disk,
		Binary:            b.QEMU, Accel: b.Accel,
		MemoryMiB: m.cfg.MemoryMiB, CPUs: m.cfg.CPUs,
		Kernel: b.Kernel.Vmlinux, Initrd: initrd,
		Append:    strings.Join(append(m.kernelArgs(), boot.Param()), " "),
		Dir:       m.dir,
		Shares:    shares,
		FS:        b.FS,
		Virtiofsd: b.Virtiofsd,
		View:      view,
		Firmware:  b.Firmware,
		Extra:     append(m.diskArgs(), m.cfg.QEMUArgs...),
		NICs:      m.qemuNICs(),
		UserNet:   m.userNet(),
	}
}

// kernelArgs cut boot time under emulation (DESIGN.md, measured: 5.5 s to
// 4.5 s): trust the TSC (no clocksource watchdog), skip the timer check,
// keep memory mappings simple and skip the speculative-execution
// mitigations, which only cost inside a test VM. Under TCG the TSC's
// frequency is given too (tscArgs, tsc.go): calibrated by the guest on a
// loaded host, it came out wrong and the guest's clock ran fast.
// panic=-1 with QEMU's -no-reboot turns a panic into QEMU's exit, which the
// driver notices at once.
var kernelArgs = []string{
	"console=ttyS0", "quiet", "panic=-1",
	"tsc=reliable", "no_timer_check", "rodata=off", "mitigations=off", "nokaslr", "norandmaps",
	"cryptomgr.notests",
}

// kernelArgs returns the kernel's command line less the boot config. A
// machine with a display has the kernel's console on it (tty0) as well as
// on the serial port; the last console named, ttyS0, stays /dev/console,
// the one the console log reads.
func (m *Machine) kernelArgs() []string {
	args := append(slices.Clone(kernelArgs), tscArgs(m.cfg.Boot.Accel.Name)...)
	if !m.cfg.Display {
		return args
	}
	return append([]string{"console=tty0"}, args...)
}

// Close stops the machine if it runs and removes its temporary directory.
// A machine whose disk is kept (Config.DiskImage) is shut down cleanly, so
// that what its guest wrote last is on the disk and the disk is clean; any
// other is stopped at once. It is idempotent.
func (m *Machine) Close() error {
	m.closeCleanly()
	m.kill("was still running at the test's end and was killed")
	cerr := m.writeCoverageState()
	for _, n := range m.cfg.NICs {
		if n.File != nil {
			n.File.Close()
		}
	}
	if m.log != nil {
		m.log.Close()
	}
	m.removeTempDisk()
	if m.ownDir {
		return errors.Join(cerr, RemoveTempDir(m.dir))
	}
	return cerr
}

// Host describes the host for checking the declarations of machines that
// boot b: its kernel's modules, and its sysctls when it is the host's own.
// A nil Boot (a lab whose machines never boot, in tests) knows no kernel.
func (b *Boot) Host() spec.Host {
	if b == nil || b.Kernel == nil {
		return spec.HostFor("", "")
	}
	return spec.HostFor(b.Kernel.Version, b.Kernel.Modules)
}
