package control

import (
	"testing"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestLabBackendStatus: the adapter's status of a real lab whose machines
// have not booted (an empty Boot: nothing boots).
func TestLabBackendStatus(t *testing.T) {
	a, b := spec.New("b"), spec.New("a")
	a.VLANs, b.VLANs, b.UserNet = []int{1, 2}, []int{2}, true
	l, err := lab.New(&machine.Boot{}, t.TempDir(), []machine.Config{{Machine: a}, {Machine: b}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ms := LabBackend(l).Machines()
	if len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" {
		t.Fatalf("got %+v, want a then b", ms)
	}
	for _, m := range ms {
		if m.State != machine.StatusDown || m.Error != "" {
			t.Errorf("%s: got state %q (%q), want down", m.Name, m.State, m.Error)
		}
	}
	want := []Interface{{VLAN: 0, Name: "eth0", Addrs: []string{"10.0.2.15/24"}}, {VLAN: 2, Name: "eth1", Addrs: []string{"192.168.2.1/24", "2001:db8:2::1/64"}}}
	if got := ms[0].Interfaces; len(got) != 2 || got[0].Name != want[0].Name || got[0].Addrs[0] != want[0].Addrs[0] ||
		got[1].VLAN != 2 || got[1].Addrs[0] != want[1].Addrs[0] || got[1].Addrs[1] != want[1].Addrs[1] {
		t.Errorf("a's interfaces: got %+v, want %+v", got, want)
	}
	if got := ms[1].Interfaces; len(got) != 2 || got[0].VLAN != 1 || got[0].Addrs[0] != "192.168.1.2/24" || got[1].Name != "eth2" {
		t.Errorf("b's interfaces: got %+v, want eth1 on VLAN 1 (192.168.1.2) and eth2", got)
	}
	if _, err := LabBackend(l).Console("nosuch"); err == nil {
		t.Error("console of a machine the lab has not: want an error")
	}
}
