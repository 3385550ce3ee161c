package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
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
// address) reach guestPort on the machine's eth0. The machine needs UserNet
// (a declared forward implies it). Forwards survive reboots; a host port
// the machine already forwards is refused.
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
	if i := slices.IndexFunc(m.forwards, func(f qemu.Forward) bool { return f.HostPort == hostPort }); i >= 0 {
		m.mu.Unlock()
		return fmt.Errorf("%s: %s: host port %d already reaches guest port %d", m.cfg.Name, what, hostPort, m.forwards[i].GuestPort)
	}
	m.forwards = append(m.forwards, fwd)
	q := m.qmp
	running := m.proc != nil
	m.mu.Unlock()
	if !running || !m.running() {
		// Applied when the machine starts, where a taken port fails the
		// boot: say so now if it is taken now.
		if err := portFree(hostPort); err != nil {
			m.dropForward(fwd)
			return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
		}
		return nil
	}
	if err := addForward(ctx, q, fwd); err != nil {
		m.dropForward(fwd) // not kept for the next boot
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return nil
}

// addForward adds fwd to the running QEMU behind q.
func addForward(ctx context.Context, q *qmp.Client, fwd qemu.Forward) error {
	rule := fmt.Sprintf("hostfwd_add %s tcp:127.0.0.1:%d-:%d", qemu.UserNetID, fwd.HostPort, fwd.GuestPort)
	raw, err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": rule})
	if err != nil {
		return err
	}
	var out string
	json.Unmarshal(raw, &out)
	if out = strings.TrimSpace(out); out != "" {
		// QEMU says only "Could not set up host forwarding rule": find
		// the cause by binding the port ourselves.
		if cause := portFree(fwd.HostPort); cause != nil {
			return cause
		}
		return fmt.Errorf("qemu: %s", out)
	}
	return nil
}

// declareForwards takes the declaration's forwards (spec.Machine's
// ForwardPorts): those with a host port are applied at every boot from
// the first; those with 0 wait for pickForwards.
func (m *Machine) declareForwards() {
	for _, f := range m.cfg.ForwardPorts {
		if f.HostPort == 0 {
			m.picks = append(m.picks, f.GuestPort)
			continue
		}
		m.forwards = append(m.forwards, qemu.Forward{HostPort: f.HostPort, GuestPort: f.GuestPort})
	}
}

// busyForward returns why a host port the machine forwards cannot be
// bound now (another process has it), naming the forward; nil when all
// are free. A boot checks first, because QEMU's own error says only
// "Could not set up host forwarding rule".
func (m *Machine) busyForward() error {
	for _, f := range m.Forwards() {
		if err := portFree(f.HostPort); err != nil {
			return fmt.Errorf("forward host port %d to guest port %d: %w (stop what holds it, or forward another port)", f.HostPort, f.GuestPort, err)
		}
	}
	return nil
}

// pickForwards gives each declared forward with host port 0 a free port,
// on the QEMU that is booting behind q: a port picked before QEMU started
// could be taken by the time it binds it. Once picked, a forward is one
// of Forwards and is applied at every later boot with the same port, so
// the address vmlab up printed keeps working across reboots.
func (m *Machine) pickForwards(ctx context.Context, q *qmp.Client) error {
	m.mu.Lock()
	picks := m.picks
	m.mu.Unlock()
	for len(picks) > 0 {
		guest := picks[0]
		port, err := pickFree(ctx, q, guest)
		if err != nil {
			return fmt.Errorf("forward a free host port to guest port %d: %w", guest, err)
		}
		picks = picks[1:]
		m.mu.Lock()
		m.forwards = append(m.forwards, qemu.Forward{HostPort: port, GuestPort: guest})
		m.picks = picks
		m.mu.Unlock()
	}
	return nil
}

// pickFree forwards a free host port to guestPort on the QEMU behind q and
// returns it. Another process can take the port between the pick and
// QEMU's bind; then it picks another, up to three times.
func pickFree(ctx context.Context, q *qmp.Client, guestPort int) (int, error) {
	var err error
	for range 3 {
		var port int
		if port, err = pickPort(); err != nil {
			return 0, err
		}
		if err = addForward(ctx, q, qemu.Forward{HostPort: port, GuestPort: guestPort}); err == nil {
			return port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return 0, err
		}
	}
	return 0, err
}

func (m *Machine) dropForward(fwd qemu.Forward) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.Index(m.forwards, fwd); i >= 0 {
		m.forwards = slices.Delete(m.forwards, i, i+1)
	}
}

// portFree returns why TCP port on the host's 127.0.0.1 cannot be bound
// (wrapping syscall.EADDRINUSE when another process has it), or nil.
func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("host port %d: %w", port, err)
	}
	l.Close()
	return nil
}

// ForwardFreePort forwards a free TCP port on the host's 127.0.0.1 to
// guestPort and returns it. It boots the machine first: a port picked
// before the boot could be taken by the time QEMU binds it. Another process
// can still take the port between the pick and QEMU's bind; then it picks
// another, up to three times.
func (m *Machine) ForwardFreePort(ctx context.Context, guestPort int) (int, error) {
	if !m.cfg.UserNet {
		return 0, fmt.Errorf("%s: forward a free host port to guest port %d: the machine has no user-mode NIC (eth0) to forward through", m.cfg.Name, guestPort)
	}
	if err := m.Start(ctx); err != nil {
		return 0, err
	}
	var err error
	for range 3 {
		var port int
		if port, err = pickPort(); err != nil {
			return 0, fmt.Errorf("%s: forward a free host port to guest port %d: %w", m.cfg.Name, guestPort, err)
		}
		err = m.ForwardPort(ctx, port, guestPort)
		if err == nil {
			return port, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return 0, err
		}
	}
	return 0, err
}

// pickPort returns a TCP port of the host's 127.0.0.1 free right now.
func pickPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
