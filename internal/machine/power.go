package machine

import (
	"context"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
)

// Shutdown powers the machine off cleanly, as NixOS's shutdown(): the agent
// stops the declared services (SIGTERM, then SIGKILL after 5 s), then every
// other process (SIGKILL after 2 s more), syncs, unmounts the file systems
// (remounting busy ones read-only) and powers off; Shutdown waits for QEMU to
// exit. Crash is the abrupt one. The machine's writable root is on its own
// disk (rootdisk.go), so a later call boots the machine on what its guest
// wrote.
func (m *Machine) Shutdown(ctx context.Context) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	return m.powerLocked(ctx, agentproto.OpPowerOff)
}

// Reboot shuts the machine down cleanly and boots it again.
func (m *Machine) Reboot(ctx context.Context) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if err := m.powerLocked(ctx, agentproto.OpReboot); err != nil {
		return err
	}
	return m.startLocked(ctx)
}

func (m *Machine) powerLocked(ctx context.Context, op agentproto.Op) error {
	if !m.running() {
		return nil
	}
	m.mu.Lock()
	proc, agent := m.proc, m.agent
	m.expected = true
	m.mu.Unlock()
	what := string(op)
	if err := agent.Power(ctx, op); err != nil {
		err = m.callError(what, err)
		m.partial("was not shut down cleanly (%s): %v", what, err)
		return err
	}
	err := m.waitExit(ctx, proc, what, m.scale(30*time.Second))
	if err != nil {
		m.partial("was not shut down cleanly (%s): %v", what, err)
	}
	if isDone(proc) { // also when it had to be killed
		m.noteStop(StopNote{})
	}
	return err
}

// waitExit waits for QEMU to exit after the guest was told to stop.
func (m *Machine) waitExit(ctx context.Context, proc *qemu.Process, what string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-proc.Done():
		return nil
	case <-t.C:
		proc.Kill()
		return &TimeoutError{Machine: m.cfg.Name, What: what + " (waiting for qemu to exit; killed it)",
			Timeout: timeout, Console: m.console.ShownTail(consoleTail)}
	case <-ctx.Done():
		return m.stoppedError(ctx, what, "")
	}
}

// Crash stops the machine at once, like pulling the plug: QEMU is killed.
// It is a no-op when the machine is not running.
func (m *Machine) Crash() { m.kill("crashed: crash() killed it") }

// kill is Crash, with why in the coverage state when the machine was up.
func (m *Machine) kill(why string) {
	m.mu.Lock()
	proc := m.proc
	up := proc != nil && !isDone(proc)
	if up || proc == nil {
		m.expected = true
	} // else it went down by itself: supervise tells it
	m.mu.Unlock()
	if up {
		m.partial("%s", why)
		proc.Kill()
		m.noteStop(StopNote{})
	}
}

// WaitForShutdown waits until the machine stops by itself (the test powered
// it off from inside). Zero timeout means DefaultTimeout. The stop is then
// expected: later calls boot the machine again.
func (m *Machine) WaitForShutdown(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = m.DefaultTimeout()
	}
	m.mu.Lock()
	proc := m.proc
	m.mu.Unlock()
	if proc == nil {
		return nil
	}
	if err := m.waitExit(ctx, proc, "wait for shutdown", timeout); err != nil {
		return err
	}
	m.mu.Lock()
	if m.proc == proc {
		m.expected, m.down = true, nil
	}
	m.mu.Unlock()
	return nil
}
