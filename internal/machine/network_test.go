package machine

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
)

// TestPortFree: a port another process holds is named with the bind error,
// which wraps EADDRINUSE (ForwardFreePort picks another on it); a port
// pickPort returns is free.
func TestPortFree(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().(*net.TCPAddr).Port
	err = portFree(taken)
	want := fmt.Sprintf("host port %d: listen tcp 127.0.0.1:%d: bind: address already in use", taken, taken)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("held port: got %v, want %q wrapping EADDRINUSE", err, want)
	}
	port, err := pickPort()
	if err != nil {
		t.Fatal(err)
	}
	if err := portFree(port); err != nil {
		t.Errorf("picked port %d: got %v, want it free", port, err)
	}
}
