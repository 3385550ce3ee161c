package machine

import (
	"context"
	"fmt"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// launched is a QEMU started and its agent's hello, within the boot's
// deadline (ctx, canceled when QEMU exits).
type launched struct {
	proc   *qemu.Process
	qmp    *qmp.Client
	agent  *agentclient.Client
	hello  agentproto.Hello
	ctx    context.Context
	cancel context.CancelFunc
}

// restoreFailed is launch's error when a restore failed before the
// agent's hello: QEMU is gone, and the machine can boot cold.
type restoreFailed struct{ err error }

func (e *restoreFailed) Error() string { return e.err.Error() }

// launch starts QEMU with qcfg, restores the machine from restore when
// it is not nil, and waits for the agent's hello. When the machine has
// just taken the snapshot, it goes on in the QEMU it took it of instead
// (restore.kept): qcfg is what that QEMU runs. A failure is the machine's
// (bootFailed), but one of a restore while ctx is live, which is a
// *restoreFailed.
func (m *Machine) launch(ctx context.Context, qcfg qemu.Config, restore *restoring) (*launched, error) {
	kept := restore.keptQEMU()
	var proc *qemu.Process
	var err error
	if kept != nil {
		proc = kept.proc
	} else if proc, err = qemu.Start(ctx, qcfg, m.console); err != nil {
		// Another process took a port since busyForward: QEMU says only
		// "Could not set up host forwarding rule".
		if busy := m.busyForward(); busy != nil {
			return nil, fmt.Errorf("%s: start: %w", m.cfg.Name, busy)
		}
		if restore != nil && ctx.Err() == nil {
			return nil, &restoreFailed{fmt.Errorf("%s: restore from the snapshot: start: %w", m.cfg.Name, err)}
		}
		return nil, m.downError("start", err)
	}
	if restore != nil {
		// The memory file is in use for as long as QEMU maps it.
		go func() { <-proc.Done(); restore.Close() }()
	}
	m.tellScreen(qcfg)
	bootCtx, cancel := context.WithTimeout(ctx, m.bootTimeout())
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-bootCtx.Done():
		}
	}()
	var q *qmp.Client
	fail := func(agent *agentclient.Client, err error) (*launched, error) {
		cancel()
		if q != nil {
			q.Close()
		}
		if restore != nil && ctx.Err() == nil {
			m.mu.Lock()
			m.booting, m.bootAgent = nil, nil
			m.mu.Unlock()
			err = m.snapshotError("restore from the snapshot: load its state and wait for the agent", proc, err)
			proc.Kill()
			if agent != nil {
				agent.Close()
			}
			return nil, &restoreFailed{err}
		}
		return nil, m.bootFailed(ctx, proc, agent, err)
	}
	if kept != nil {
		q = kept.qmp
	} else if q, err = qmp.NewClient(bootCtx, proc.QMP); err != nil {
		q = nil
		return fail(nil, fmt.Errorf("connect to qmp: %w", err))
	}
	if restore != nil {
		if err := restore.load(bootCtx, q, proc.Agent); err != nil {
			return fail(nil, err)
		}
	}
	agent := agentclient.New(proc.Agent)
	agent.OnNotice(m.onNotice)
	m.mu.Lock()
	m.booting, m.bootAgent = proc, agent
	m.serviceExits = nil
	m.mu.Unlock()
	if err := m.pickForwards(bootCtx, q); err != nil {
		return fail(agent, err)
	}
	hello, err := agent.Hello(bootCtx)
	if err == nil && hello.Version != agentproto.Version {
		err = fmt.Errorf("agent speaks protocol %d, want %d: the initramfs is stale", hello.Version, agentproto.Version)
	}
	if err != nil {
		return fail(agent, err)
	}
	return &launched{proc: proc, qmp: q, agent: agent, hello: hello, ctx: bootCtx, cancel: cancel}, nil
}
