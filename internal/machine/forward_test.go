package machine_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

// freePort returns a port of the host's 127.0.0.1 free right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestFakeDeclaredForwards: a declared forward with a host port is one of
// Forwards before the first boot (one with host port 0 waits for the
// boot: TestPickForwards), the user-mode NIC comes with it, and a runtime
// ForwardPort of a host port already forwarded is refused, naming the
// forward it has.
func TestFakeDeclaredForwards(t *testing.T) {
	fixed := freePort(t)
	m := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{
		ForwardPorts: []spec.Forward{{HostPort: fixed, GuestPort: 81}, {HostPort: 0, GuestPort: 80}}}})
	if got, want := m.Forwards(), []qemu.Forward{{HostPort: fixed, GuestPort: 81}}; !slices.Equal(got, want) {
		t.Errorf("before the boot: got forwards %v, want %v", got, want)
	}
	if ifs := m.Interfaces(); len(ifs) == 0 || ifs[0].Name != "eth0" {
		t.Errorf("got interfaces %+v, want eth0 (a forward implies the user-mode NIC)", ifs)
	}
	err := m.ForwardPort(t.Context(), fixed, 82)
	want := fmt.Sprintf("fake: forward host port %d to guest port 82: host port %d already reaches guest port 81", fixed, fixed)
	if err == nil || err.Error() != want {
		t.Errorf("forwarding a declared host port again: got %v, want %s", err, want)
	}
}

// TestFakeBusyForward: a declared host port another process holds fails
// the boot, naming the forward and the cause, not with QEMU's "Could not
// set up host forwarding rule".
func TestFakeBusyForward(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	m := fakeMachineConfig(t, "exit", machine.Config{Machine: spec.Machine{
		ForwardPorts: []spec.Forward{{HostPort: port, GuestPort: 80}}}})
	err = m.Start(t.Context())
	want := fmt.Sprintf("fake: start: forward host port %d to guest port 80: host port %d: listen tcp 127.0.0.1:%d: bind: address already in use", port, port, port)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("got %v, want %s... wrapping EADDRINUSE", err, want)
	}
	held.Close()
	// Freed, the port no longer stands in the way: the boot gets to QEMU
	// (whose fake exits at once in this mode).
	err = m.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "cannot open /nonexistent") {
		t.Errorf("with the port free: got %v, want the fake QEMU's own failure", err)
	}
}
