package qemu

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestAcceptQueued: once a deadline has passed, Accept fails before it
// looks at the queue, so a connection QEMU made just before it exited was
// lost ("qemu exited before connecting") and with it the console's reason
// (a triple fault). acceptQueued still takes it; with none queued it
// returns nil at once.
func TestAcceptQueued(t *testing.T) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c := acceptQueued(l); c != nil {
		t.Fatal("acceptQueued with nothing queued returned a connection")
	}
	d, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l.SetDeadline(time.Now())
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Fatal("Accept past its deadline took the queued connection: acceptQueued is no longer needed, remove it")
	}
	c := acceptQueued(l)
	if c == nil {
		t.Fatal("acceptQueued: got nil, want the queued connection")
	}
	defer c.Close()
	d.Write([]byte("x"))
	b := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Errorf("read from the queued connection: %q, %v", b, err)
	}
}
