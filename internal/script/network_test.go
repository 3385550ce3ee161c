package script

import (
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/report"
)

// TestNetworkEvents: partition, heal and vlan_fault become Network events
// on the test's timeline, in their subtest, failed ones with their error.
// (A file without machines: the calls need no VM.)
func TestNetworkEvents(t *testing.T) {
	src := "def test_net():\n" +
		"    subtest('cut', lambda: heal())\n" +
		"    partition()\n" +
		"    vlan_fault(3, loss = 0.5)\n"
	file, err := Load("net.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	runErr := file.Run(t.Context(), "test_net", nil, t.TempDir(), ev)
	if runErr == nil || !strings.Contains(runErr.Error(), "no machine is on it") {
		t.Fatalf("got %v, want vlan_fault's error", runErr)
	}
	got := ev.find(report.Network)
	want := []struct {
		text, path, err string
	}{
		{"heal()", "cut", ""},
		{"partition()", "", ""},
		{"vlan_fault(3, loss = 0.5)", "", "fault on VLAN 3: no machine is on it"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d network events %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Text != w.text || strings.Join(g.Path, "/") != w.path || g.Error != w.err || g.Test != "net.test_net" {
			t.Errorf("event %d: got text %q, path %q, error %q, test %q; want %q, %q, %q, net.test_net",
				i, g.Text, g.Path, g.Error, g.Test, w.text, w.path, w.err)
		}
	}
}

// TestNetCallText: a network call reads as the script wrote it, with
// machines by name.
func TestNetCallText(t *testing.T) {
	a, b, c := &machineValue{name: "a"}, &machineValue{name: "b"}, &machineValue{name: "c"}
	tests := []struct {
		name   string
		fn     string
		argv   starlark.Tuple
		kwargs []starlark.Tuple
		want   string
	}{
		{"link fault", "link_fault", starlark.Tuple{a, b}, []starlark.Tuple{{starlark.String("delay"), starlark.Float(0.25)}}, "link_fault(a, b, delay = 0.25)"},
		{"partition", "partition", starlark.Tuple{starlark.NewList([]starlark.Value{a}), starlark.Tuple{b, c}}, nil, "partition([a], (b, c))"},
		{"keyword machines", "link_fault", nil, []starlark.Tuple{{starlark.String("sender"), a}, {starlark.String("receiver"), b}}, "link_fault(sender = a, receiver = b)"},
		{"strings stay quoted", "log", starlark.Tuple{starlark.String("x")}, nil, `log("x")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := netCallText(tt.fn, tt.argv, tt.kwargs); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestNetworkCallsExist: every name networkCalls reports is a method or a
// function, so none is silently left out of the timeline by a typo.
func TestNetworkCallsExist(t *testing.T) {
	var names []string
	for _, m := range methodTable {
		names = append(names, m.name)
	}
	for _, f := range functionTable {
		names = append(names, f.name)
	}
	for name := range networkCalls {
		if !slices.Contains(names, name) {
			t.Errorf("networkCalls names %q, which is no method or function", name)
		}
	}
}
