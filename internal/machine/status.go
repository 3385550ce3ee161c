package machine

import (
	"github.com/vmlab/vmlab/internal/qemu"
)

// Status is what a machine is doing, as vmlab status shows it.
type Status string

const (
	StatusDown    Status = "down"    // never started, or stopped on purpose
	StatusBooting Status = "booting" // a boot is under way
	StatusUp      Status = "up"      // running, its agent answering
	StatusFailed  Status = "failed"  // went down when nobody asked (see Status's error)
)

func (m *Machine) setStarting(on bool) {
	m.mu.Lock()
	m.starting = on
	m.mu.Unlock()
}

// Status returns what the machine is doing; for StatusFailed also why it went
// down (a *DownError, with its console's last lines).
func (m *Machine) Status() (Status, error) {
	reason, down := m.settledDown()
	m.mu.Lock()
	starting := m.starting
	m.mu.Unlock()
	switch {
	case starting:
		return StatusBooting, nil
	case m.running():
		return StatusUp, nil
	case down != nil:
		return StatusFailed, m.downBecause("status", down, reason)
	}
	return StatusDown, nil
}

// Interface is one of a machine's network cards as the guest sees it.
type Interface struct {
	VLAN  int      // the lab's VLAN; 0 for the user-mode NIC (eth0)
	Name  string   // eth0, eth1, ...
	Addrs []string // with their prefix length: 192.168.1.2/24
}

// Interfaces returns the machine's network cards: the user-mode NIC first
// when it has one, then one per VLAN.
func (m *Machine) Interfaces() []Interface {
	var out []Interface
	if m.cfg.UserNet {
		out = append(out, Interface{Name: "eth0", Addrs: []string{userNetAddr}})
	}
	for _, n := range m.cfg.NICs {
		out = append(out, Interface{VLAN: n.VLAN, Name: n.Interface.Name, Addrs: append([]string(nil), n.Interface.Addrs...)})
	}
	return out
}

// Forwards returns the host ports forwarded to the machine: the declared
// ones (Config's ForwardPorts; one declared with host port 0 once the first
// boot picked its port), then those ForwardPort added. It keeps them
// across reboots.
func (m *Machine) Forwards() []qemu.Forward {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]qemu.Forward(nil), m.forwards...)
}
