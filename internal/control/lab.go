package control

import (
	"context"
	"fmt"
	"io"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
)

// LabBackend serves a running *lab.Lab: its machines' states, addresses
// and forwards, shells through Machine.Shell, consoles through
// Machine.SubscribeConsole and WriteConsole.
func LabBackend(l *lab.Lab) Backend { return labBackend{l} }

type labBackend struct{ l *lab.Lab }

func (b labBackend) Machines() []MachineStatus {
	var out []MachineStatus
	for _, name := range b.l.Names() {
		m := b.l.Machine(name)
		st, err := m.Status()
		ms := MachineStatus{Name: name, State: st}
		if st == machine.StatusUp || st == machine.StatusBooting {
			ms.VNC = m.VNCSocket()
		}
		if err != nil {
			ms.Error = err.Error()
		}
		for _, i := range m.Interfaces() {
			ms.Interfaces = append(ms.Interfaces, Interface{VLAN: i.VLAN, Name: i.Name, Addrs: i.Addrs})
		}
		for _, f := range m.Forwards() {
			ms.Forwards = append(ms.Forwards, Forward{HostPort: f.HostPort, GuestPort: f.GuestPort})
		}
		out = append(out, ms)
	}
	return out
}

func (b labBackend) Shell(ctx context.Context, name string, o machine.ShellOptions) (machine.ShellResult, error) {
	m := b.l.Machine(name)
	if m == nil {
		return machine.ShellResult{}, fmt.Errorf("shell on %s: the lab has no machine of that name (vmlab status lists them)", name)
	}
	return m.Shell(ctx, o)
}

func (b labBackend) Console(name string) (io.ReadWriteCloser, error) {
	m := b.l.Machine(name)
	if m == nil {
		return nil, fmt.Errorf("console of %s: the lab has no machine of that name (vmlab status lists them)", name)
	}
	return machineConsole{m.SubscribeConsole(), m}, nil
}

// machineConsole reads a machine's console subscription and writes to its
// serial port.
type machineConsole struct {
	*machine.ConsoleReader
	m *machine.Machine
}

func (c machineConsole) Write(p []byte) (int, error) { return c.m.WriteConsole(p) }
