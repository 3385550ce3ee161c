package machine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
)

// NIC is a network card on a virtual switch.
type NIC struct {
	VLAN int
	// File is QEMU's end of the switch port. It stays open for the
	// machine's life, so a rebooted machine reattaches to the same port.
	File *os.File
	// Mcast replaces File with QEMU's multicast network (group:port), the
	// network benchmark's baseline.
	Mcast     string
	Interface agentproto.Interface // MAC, guest name and addresses
}

// userNetAddr is eth0's address: QEMU's user-mode network forwards host
// ports to it.
const userNetAddr = "10.0.2.15/24"

func (m *Machine) qemuNICs() []qemu.NIC {
	var nics []qemu.NIC
	for _, n := range m.cfg.NICs {
		nics = append(nics, qemu.NIC{ID: fmt.Sprintf("vlan%d", n.VLAN), MAC: n.Interface.MAC, File: n.File, Mcast: n.Mcast})
	}
	return nics
}

func (m *Machine) userNet() *qemu.UserNet {
	if !m.cfg.UserNet {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return &qemu.UserNet{Forwards: append([]qemu.Forward(nil), m.forwards...)}
}

// configureNetwork names and addresses the guest's NICs and writes its
// /etc/hosts, right after the agent's hello.
func (m *Machine) configureNetwork(ctx context.Context, agent *agentclient.Client) error {
	var n agentproto.Network
	if m.cfg.UserNet {
		n.Interfaces = append(n.Interfaces, agentproto.Interface{MAC: qemu.UserNetMAC, Name: "eth0", Addrs: []string{userNetAddr}})
	}
	for _, nic := range m.cfg.NICs {
		n.Interfaces = append(n.Interfaces, nic.Interface)
	}
	n.Hosts = m.cfg.Hosts
	if len(n.Interfaces) == 0 && len(n.Hosts) == 0 {
		return nil
	}
	if err := agent.Network(ctx, n); err != nil {
		return fmt.Errorf("configure network: %w", err)
	}
	return nil
}

// ForwardPort makes TCP port hostPort on the host's 127.0.0.1 (never another
// address) reach guestPort on the machine's eth0. The machine needs UserNet.
// Forwards survive reboots.
func (m *Machine) ForwardPort(ctx context.Context, hostPort, guestPort int) error {
	what := fmt.Sprintf("forward host port %d to guest port %d", hostPort, guestPort)
	if !m.cfg.UserNet {
		return fmt.Errorf("%s: %s: the machine has no user-mode NIC (eth0) to forward through", m.cfg.Name, what)
	}
	if hostPort < 1 || hostPort > 65535 || guestPort < 1 || guestPort > 65535 {
		return fmt.Errorf("%s: %s: ports are 1..65535", m.cfg.Name, what)
	}
	fwd := qemu.Forward{HostPort: hostPort, GuestPort: guestPort}
	m.mu.Lock()
	m.forwards = append(m.forwards, fwd)
	q := m.qmp
	running := m.proc != nil
	m.mu.Unlock()
	if !running || !m.running() {
		return nil // applied when the machine starts
	}
	rule := fmt.Sprintf("hostfwd_add %s tcp:127.0.0.1:%d-:%d", qemu.UserNetID, hostPort, guestPort)
	raw, err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": rule})
	var out string
	if err == nil {
		json.Unmarshal(raw, &out)
		if out = strings.TrimSpace(out); out != "" {
			err = fmt.Errorf("qemu: %s", out) // e.g. the host port is taken
		}
	}
	if err != nil {
		m.mu.Lock()
		if i := slices.Index(m.forwards, fwd); i >= 0 { // not kept for the next boot
			m.forwards = slices.Delete(m.forwards, i, i+1)
		}
		m.mu.Unlock()
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return nil
}
