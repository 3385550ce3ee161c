// Package lab owns one test's world: its machines, the virtual networks
// between them and the faults on those networks. It turns declarations
// (machine names, VLAN lists) into addresses, switches and NICs, validates
// them all before anything boots, and tears everything down in Close.
//
// Addressing follows the NixOS driver: machines are numbered 1..254 in the
// order of their sorted names; a machine's VLANs, in the order listed, are
// eth1, eth2, ...; on VLAN v machine n is 192.168.v.n/24 and 2001:db8:v::n/64;
// /etc/hosts in every machine maps each machine's name to its addresses on
// its first VLAN.
package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vnet"
)

// MaxMachines is the most machines one lab holds: the last octet of
// 192.168.v.n.
const MaxMachines = spec.MaxMachines

// Lab is a running set of machines and networks.
type Lab struct {
	dir      string
	machines map[string]*machine.Machine
	order    []string // sorted names
	vlans    map[string][]int
	switches map[int]*vnet.Switch
	captures []*vnet.Capture
}

// New checks the machines' declarations (every problem at once, before
// anything is created), then creates the networks (capturing each VLAN to
// dir/vlan<N>.pcap) and the machines, which boot lazily. Each machine's
// directory is dir/<name> unless its Config names one; the lab sets Boot,
// the NICs and /etc/hosts, and Logf when the Config has none.
func New(boot *machine.Boot, dir string, machines []machine.Config, logf func(string, ...any)) (*Lab, error) {
	if err := Check(boot, machines); err != nil {
		return nil, err
	}
	if err := checkPrepared(machines); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil { // private: consoles and captures
		return nil, fmt.Errorf("create lab: %w", err)
	}
	l := &Lab{dir: dir, machines: make(map[string]*machine.Machine),
		vlans: make(map[string][]int), switches: make(map[int]*vnet.Switch)}
	machines = slices.Clone(machines)
	slices.SortFunc(machines, func(a, b machine.Config) int { return strings.Compare(a.Name, b.Name) })
	hosts := hostEntries(machines)
	for i, cfg := range machines {
		if cfg.Logf == nil {
			cfg.Logf = logf
		}
		if err := l.addMachine(boot, i+1, cfg, hosts); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Check checks the machines' declarations, each and together, against the
// host and the kernel boot boots, and reports every problem at once.
func Check(boot *machine.Boot, machines []machine.Config) error {
	specs := make([]spec.Machine, len(machines))
	for i, c := range machines {
		specs[i] = c.WithDefaults()
	}
	return spec.Join(spec.CheckAll(specs, boot.Host()))
}

// Addr returns machine n's address on VLAN v.
func Addr(v, n int) (ipv4, ipv6 netip.Prefix) {
	ipv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(v), byte(n)}), 24)
	ipv6 = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::%x/64", v, n))
	return ipv4, ipv6
}

// MAC returns the MAC address of machine n's NIC on VLAN v (locally
// administered, QEMU's 52:54:00 prefix).
func MAC(v, n int) string { return fmt.Sprintf("52:54:00:12:%02x:%02x", v, n) }

func hostEntries(sorted []machine.Config) []agentproto.HostEntry {
	var hosts []agentproto.HostEntry
	for i, s := range sorted {
		vl := s.NetVLANs()
		if len(vl) == 0 {
			continue
		}
		v4, v6 := Addr(vl[0], i+1)
		hosts = append(hosts, agentproto.HostEntry{Name: s.Name, Addrs: []string{v4.Addr().String(), v6.Addr().String()}})
	}
	return hosts
}

func (l *Lab) addMachine(boot *machine.Boot, n int, cfg machine.Config, hosts []agentproto.HostEntry) error {
	cfg.Boot, cfg.Hosts = boot, hosts
	if cfg.Dir == "" {
		// The name passed Check (a host name), so this cannot leave l.dir;
		// Inside makes sure of it where the path is made.
		dir, err := spec.Inside(l.dir, cfg.Name)
		if err != nil {
			return fmt.Errorf("add machine %q: %w", cfg.Name, err)
		}
		cfg.Dir = dir
	}
	for i, v := range cfg.NetVLANs() {
		sw, err := l.switchFor(v)
		if err != nil {
			return err
		}
		_, f, err := sw.AddPort(cfg.Name)
		if err != nil {
			return err
		}
		v4, v6 := Addr(v, n)
		cfg.NICs = append(cfg.NICs, machine.NIC{
			VLAN: v, File: f,
			Interface: agentproto.Interface{MAC: MAC(v, n), Name: fmt.Sprintf("eth%d", i+1),
				Addrs: []string{v4.String(), v6.String()}},
		})
	}
	m, err := machine.New(cfg)
	if err != nil {
		for _, nic := range cfg.NICs {
			nic.File.Close()
		}
		return err
	}
	l.machines[cfg.Name] = m
	l.order = append(l.order, cfg.Name)
	l.vlans[cfg.Name] = cfg.NetVLANs()
	return nil
}

func (l *Lab) switchFor(v int) (*vnet.Switch, error) {
	if sw := l.switches[v]; sw != nil {
		return sw, nil
	}
	c, err := vnet.NewCapture(filepath.Join(l.dir, fmt.Sprintf("vlan%d.pcap", v)))
	if err != nil {
		return nil, err
	}
	l.captures = append(l.captures, c)
	sw := vnet.New(v, c)
	l.switches[v] = sw
	return sw, nil
}

// Machine returns the machine called name, or nil.
func (l *Lab) Machine(name string) *machine.Machine { return l.machines[name] }

// Names returns the machines' names, sorted.
func (l *Lab) Names() []string { return slices.Clone(l.order) }

// Close stops every machine and network and closes the captures. The
// machines stop at once: one that shuts down cleanly (a kept disk,
// coverage) takes ~0.3 s under TCG, and none waits for another. It is
// idempotent.
func (l *Lab) Close() error {
	errs := make([]error, 0, len(l.machines))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range l.machines {
		wg.Go(func() {
			err := m.Close()
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, sw := range l.switches {
		errs = append(errs, sw.Close())
	}
	for _, c := range l.captures {
		errs = append(errs, c.Close())
	}
	l.machines, l.switches, l.captures = nil, nil, nil
	return errors.Join(errs...)
}
