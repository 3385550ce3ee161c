package lab

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vmlab/vmlab/internal/vnet"
)

// Block cuts the machine off the given VLANs, or all of its VLANs when none
// are given. (NixOS's block cuts only the first NIC.)
func (l *Lab) Block(name string, vlans ...int) error {
	return l.eachPort("block", name, vlans, (*vnet.Switch).Block)
}

// Unblock reconnects the machine to the given VLANs, or all of its VLANs.
func (l *Lab) Unblock(name string, vlans ...int) error {
	return l.eachPort("unblock", name, vlans, (*vnet.Switch).Unblock)
}

func (l *Lab) eachPort(verb, name string, vlans []int, do func(*vnet.Switch, string) error) error {
	on, ok := l.vlans[name]
	if !ok {
		return fmt.Errorf("%s %s: no such machine (have %v)", verb, name, l.order)
	}
	if len(vlans) == 0 {
		vlans = on
	}
	for _, v := range vlans {
		if !slices.Contains(on, v) {
			return fmt.Errorf("%s %s: it is not on VLAN %d (it is on %v)", verb, name, v, on)
		}
		if err := do(l.switches[v], name); err != nil {
			return fmt.Errorf("%s %s: %w", verb, name, err)
		}
	}
	return nil
}

// Partition splits every VLAN into the given groups of machines: machines in
// different groups cannot reach each other on any VLAN, and machines in no
// group reach nobody. Heal ends it.
func (l *Lab) Partition(groups ...[]string) error {
	seen := make(map[string]bool)
	for _, g := range groups {
		for _, name := range g {
			if _, ok := l.vlans[name]; !ok {
				return fmt.Errorf("partition: no machine %q (have %v)", name, l.order)
			}
			if seen[name] {
				return fmt.Errorf("partition: machine %q is in two groups", name)
			}
			seen[name] = true
		}
	}
	for v, sw := range l.switches {
		var local [][]string
		for _, g := range groups {
			var members []string
			for _, name := range g {
				if slices.Contains(l.vlans[name], v) {
					members = append(members, name)
				}
			}
			local = append(local, members)
		}
		if err := sw.Partition(local...); err != nil {
			return err
		}
	}
	return nil
}

// Heal ends a partition on every VLAN.
func (l *Lab) Heal() {
	for _, sw := range l.switches {
		sw.Heal()
	}
}

// SetLinkFault sets the fault on the link from one machine to another on
// VLAN v; v == 0 means every VLAN both are on. The zero Fault clears it.
func (l *Lab) SetLinkFault(from, to string, v int, f vnet.Fault) error {
	for _, name := range []string{from, to} {
		if _, ok := l.vlans[name]; !ok {
			return fmt.Errorf("fault %s -> %s: no machine %q (have %v)", from, to, name, l.order)
		}
	}
	var errs []error
	applied := false
	for _, vl := range l.commonVLANs(from, to) {
		if v == 0 || v == vl {
			errs = append(errs, l.switches[vl].SetFault(from, to, f))
			applied = true
		}
	}
	if !applied {
		return fmt.Errorf("fault %s -> %s: they share no VLAN%s", from, to, vlanSuffix(v))
	}
	return errors.Join(errs...)
}

func vlanSuffix(v int) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(" %d", v)
}

func (l *Lab) commonVLANs(a, b string) []int {
	var out []int
	for _, v := range l.vlans[a] {
		if slices.Contains(l.vlans[b], v) {
			out = append(out, v)
		}
	}
	return out
}

// SetVLANFault sets the fault on every link of VLAN v.
func (l *Lab) SetVLANFault(v int, f vnet.Fault) error {
	sw := l.switches[v]
	if sw == nil {
		return fmt.Errorf("fault on VLAN %d: no machine is on it", v)
	}
	return sw.SetVLANFault(f)
}
