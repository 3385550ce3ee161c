package agent

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestUnixSocketConditions: the stream wait holds on a stream socket and
// not on a datagram one, and the datagram wait (is_datagram) the other
// way round; neither holds before the socket exists.
func TestUnixSocketConditions(t *testing.T) {
	dir := t.TempDir()
	stream, dgram := filepath.Join(dir, "stream"), filepath.Join(dir, "dgram")
	check := func(kind agentproto.WaitKind, path string) bool {
		t.Helper()
		fn, _, err := condition(&agentproto.Wait{Kind: kind, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		ok, _ := fn(t.Context())
		return ok
	}
	if check(agentproto.WaitUnixDatagram, dgram) || check(agentproto.WaitUnixSocket, stream) {
		t.Error("a wait holds before its socket exists")
	}
	l, err := net.Listen("unix", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgram, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name string
		kind agentproto.WaitKind
		path string
		want bool
	}{
		{"stream wait, stream socket", agentproto.WaitUnixSocket, stream, true},
		{"stream wait, datagram socket", agentproto.WaitUnixSocket, dgram, false},
		{"datagram wait, datagram socket", agentproto.WaitUnixDatagram, dgram, true},
		{"datagram wait, stream socket", agentproto.WaitUnixDatagram, stream, false},
	}
	for _, tt := range tests {
		if got := check(tt.kind, tt.path); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
