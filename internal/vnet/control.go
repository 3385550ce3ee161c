package vnet

import (
	"fmt"
	"slices"
)

// Block cuts the port: frames from and to its machine are dropped (the
// machine's link stays up, as with a cable pulled at the far end).
func (s *Switch) Block(name string) error { return s.setDown(name, true) }

// Unblock restores a blocked port.
func (s *Switch) Unblock(name string) error { return s.setDown(name, false) }

func (s *Switch) setDown(name string, down bool) error {
	p, err := s.port(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	return nil
}

func (s *Switch) port(name string) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.ports[name]
	if p == nil {
		return nil, fmt.Errorf("vlan %d: no machine %q on it (have %v)", s.VLAN, name, s.namesLocked())
	}
	return p, nil
}

func (s *Switch) namesLocked() []string {
	var names []string
	for n := range s.ports {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Partition splits the VLAN: machines in different groups cannot reach each
// other, and machines in no group reach nobody. Heal undoes it.
func (s *Switch) Partition(groups ...[]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int)
	for i, g := range groups {
		for _, name := range g {
			if s.ports[name] == nil {
				return fmt.Errorf("vlan %d: partition: no machine %q on it (have %v)", s.VLAN, name, s.namesLocked())
			}
			if _, dup := m[name]; dup {
				return fmt.Errorf("vlan %d: partition: machine %q is in two groups", s.VLAN, name)
			}
			m[name] = i
		}
	}
	s.groups = m
	return nil
}

// Heal ends a partition.
func (s *Switch) Heal() {
	s.mu.Lock()
	s.groups = nil
	s.mu.Unlock()
}

// SetFault sets the fault on the link from one machine to another (one
// direction). The zero Fault clears it.
func (s *Switch) SetFault(from, to string, f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	for _, n := range []string{from, to} {
		if _, err := s.port(n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.zero() {
		delete(s.linkFault, [2]string{from, to})
	} else {
		s.linkFault[[2]string{from, to}] = f
	}
	return nil
}

// SetVLANFault sets the fault on every link of the VLAN that has no fault of
// its own.
func (s *Switch) SetVLANFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.vlanFault = f
	s.mu.Unlock()
	return nil
}
