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

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/vnet"
)

// MaxMachines is the most machines one lab holds: the last octet of
// 192.168.v.n.
const MaxMachines = 254

// Spec declares a machine.
type Spec struct {
	Name string
	// VLANs the machine is on, in order (eth1, eth2, ...). Nil means [1];
	// an empty non-nil slice means no network at all.
	VLANs []int
	// UserNet adds eth0, a user-mode NIC whose only use is ForwardPort: it
	// has no route out and the guest cannot reach the host through it.
	UserNet bool
	// Machine is the rest of the machine's configuration (memory, shares,
	// ...); its Name, Boot and network fields are set by the lab.
	Machine machine.Config
}

// Lab is a running set of machines and networks.
type Lab struct {
	dir      string
	machines map[string]*machine.Machine
	order    []string // sorted names
	vlans    map[string][]int
	switches map[int]*vnet.Switch
	captures []*vnet.Capture
}

// New validates the specs, creates the networks (capturing each VLAN to
// dir/vlan<N>.pcap) and the machines, which boot lazily. Every problem with
// the specs is reported at once.
func New(boot *machine.Boot, dir string, specs []Spec, logf func(string, ...any)) (*Lab, error) {
	if err := Validate(specs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil { // private: consoles and captures
		return nil, fmt.Errorf("create lab: %w", err)
	}
	l := &Lab{dir: dir, machines: make(map[string]*machine.Machine),
		vlans: make(map[string][]int), switches: make(map[int]*vnet.Switch)}
	specs = slices.Clone(specs)
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	hosts := hostEntries(specs)
	for i, s := range specs {
		if err := l.addMachine(boot, i+1, s, hosts, logf); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Validate checks machine declarations without building anything: names, VLAN
// numbers, the number of machines. It reports every problem at once.
func Validate(specs []Spec) error {
	var errs []error
	if len(specs) > MaxMachines {
		errs = append(errs, fmt.Errorf("%d machines declared; a lab holds at most %d", len(specs), MaxMachines))
	}
	seen := make(map[string]bool)
	for _, s := range specs {
		switch {
		case s.Name == "":
			errs = append(errs, errors.New("a machine has no name"))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("machine %q is declared twice", s.Name))
		}
		seen[s.Name] = true
		vlanSeen := make(map[int]bool)
		for _, v := range vlansOf(s) {
			if v < 1 || v > 254 {
				errs = append(errs, fmt.Errorf("machine %q: VLAN %d is out of range (1..254)", s.Name, v))
			}
			if vlanSeen[v] {
				errs = append(errs, fmt.Errorf("machine %q: VLAN %d is listed twice", s.Name, v))
			}
			vlanSeen[v] = true
		}
	}
	return errors.Join(errs...)
}

func vlansOf(s Spec) []int {
	if s.VLANs == nil {
		return []int{1}
	}
	return s.VLANs
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

func hostEntries(sorted []Spec) []agentproto.HostEntry {
	var hosts []agentproto.HostEntry
	for i, s := range sorted {
		vl := vlansOf(s)
		if len(vl) == 0 {
			continue
		}
		v4, v6 := Addr(vl[0], i+1)
		hosts = append(hosts, agentproto.HostEntry{Name: s.Name, Addrs: []string{v4.Addr().String(), v6.Addr().String()}})
	}
	return hosts
}

func (l *Lab) addMachine(boot *machine.Boot, n int, s Spec, hosts []agentproto.HostEntry, logf func(string, ...any)) error {
	cfg := s.Machine
	cfg.Name, cfg.Boot, cfg.Logf = s.Name, boot, logf
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(l.dir, s.Name)
	}
	cfg.Hosts = hosts
	cfg.UserNet = s.UserNet
	for i, v := range vlansOf(s) {
		sw, err := l.switchFor(v)
		if err != nil {
			return err
		}
		_, f, err := sw.AddPort(s.Name)
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
	l.machines[s.Name] = m
	l.order = append(l.order, s.Name)
	l.vlans[s.Name] = vlansOf(s)
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

// Close stops every machine and network and closes the captures. It is
// idempotent.
func (l *Lab) Close() error {
	var errs []error
	for _, m := range l.machines {
		errs = append(errs, m.Close())
	}
	for _, sw := range l.switches {
		errs = append(errs, sw.Close())
	}
	for _, c := range l.captures {
		errs = append(errs, c.Close())
	}
	l.machines, l.switches, l.captures = nil, nil, nil
	return errors.Join(errs...)
}
