package machine

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
	"github.com/vmlab/vmlab/internal/qemu/qmp/qmptest"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestPickForwards boots nothing: a fake QMP plays a QEMU whose first
// hostfwd_add finds its port taken by another process (as QEMU says it:
// "Could not set up host forwarding rule"). pickForwards picks another
// port, and keeps what it picked as a forward for the later boots.
func TestPickForwards(t *testing.T) {
	srv := qmptest.NewServer(t)
	var mu sync.Mutex
	var rules []string
	var taker net.Listener
	defer func() {
		if taker != nil {
			taker.Close()
		}
	}()
	srv.Handle("human-monitor-command", func(args json.RawMessage) (any, *qmp.Error) {
		var a struct {
			CommandLine string `json:"command-line"`
		}
		json.Unmarshal(args, &a)
		var port, guest int
		fmt.Sscanf(a.CommandLine, "hostfwd_add user0 tcp:127.0.0.1:%d-:%d", &port, &guest)
		mu.Lock()
		defer mu.Unlock()
		rules = append(rules, a.CommandLine)
		if len(rules) == 1 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return nil, &qmp.Error{Class: "GenericError", Desc: err.Error()}
			}
			taker = l
			return "Could not set up host forwarding rule 'tcp:127.0.0.1:" + fmt.Sprint(port) + "-:80'\r\n", nil
		}
		return "", nil
	})
	m := &Machine{cfg: Config{Machine: spec.Machine{Name: "web", UserNet: true,
		ForwardPorts: []spec.Forward{{HostPort: 0, GuestPort: 80}}}}}
	m.declareForwards()
	if got := m.Forwards(); len(got) != 0 {
		t.Fatalf("before the boot: got forwards %v, want none (the port is picked at the boot)", got)
	}
	if err := m.pickForwards(t.Context(), srv.Client(t)); err != nil {
		t.Fatal(err)
	}
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(rules)
	}
	got, sent := m.Forwards(), seen()
	if len(sent) != 2 {
		t.Fatalf("sent rules %q, want a second try after the taken port", sent)
	}
	want := []qemu.Forward{{GuestPort: 80}}
	fmt.Sscanf(sent[1], "hostfwd_add user0 tcp:127.0.0.1:%d-:80", &want[0].HostPort)
	if !slices.Equal(got, want) || want[0].HostPort == 0 || sent[0] == sent[1] {
		t.Errorf("got forwards %v after rules %q, want the second rule's port -> 80", got, sent)
	}
	// Picked once: the next boot applies it from QEMU's command line.
	if err := m.pickForwards(t.Context(), srv.Client(t)); err != nil || len(seen()) != 2 {
		t.Errorf("second boot: got %v and rules %q, want no new pick", err, seen())
	}
	if u := m.userNet(); u == nil || !slices.Equal(u.Forwards, want) {
		t.Errorf("the next boot's user-mode NIC: got %+v, want forwards %v", u, want)
	}
}
