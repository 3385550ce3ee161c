package vnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// machine is the QEMU end of a port, as a test sees it.
type machine struct {
	name string
	mac  [6]byte
	conn net.Conn
}

func attach(t *testing.T, s *Switch, name string, id byte) *machine {
	t.Helper()
	_, f, err := s.AddPort(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &machine{name: name, mac: [6]byte{0x52, 0x54, 0, 0, 1, id}, conn: c}
}

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (m *machine) send(t *testing.T, to [6]byte, payload string) {
	t.Helper()
	frame := append(append(append([]byte{}, to[:]...), m.mac[:]...), 0x88, 0xb5)
	if _, err := m.conn.Write(append(frame, payload...)); err != nil {
		t.Fatal(err)
	}
}

// recv returns the payload of the next frame, or "" when none comes within d.
func (m *machine) recv(t *testing.T, d time.Duration) string {
	t.Helper()
	buf := make([]byte, 2048)
	m.conn.SetReadDeadline(time.Now().Add(d))
	n, err := m.conn.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[14:n])
}

const (
	arrives = 2 * time.Second        // a frame that should arrive does within this
	silence = 200 * time.Millisecond // a frame that should not arrive is given this long
)

func newSwitch(t *testing.T, capture *Capture) *Switch {
	s := New(1, capture)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestForwarding(t *testing.T) {
	s := newSwitch(t, nil)
	a, b, c := attach(t, s, "a", 1), attach(t, s, "b", 2), attach(t, s, "c", 3)
	a.send(t, broadcast, "hello all")
	for _, m := range []*machine{b, c} {
		if got := m.recv(t, arrives); got != "hello all" {
			t.Errorf("%s: got %q, want the broadcast", m.name, got)
		}
	}
	// b has learned a's address: a unicast reply reaches a only.
	b.send(t, a.mac, "to a")
	if got := a.recv(t, arrives); got != "to a" {
		t.Errorf("a: got %q, want %q", got, "to a")
	}
	if got := c.recv(t, silence); got != "" {
		t.Errorf("c: got %q, want nothing (unicast to a)", got)
	}
}

func TestBlockAndPartition(t *testing.T) {
	s := newSwitch(t, nil)
	a, b, c := attach(t, s, "a", 1), attach(t, s, "b", 2), attach(t, s, "c", 3)
	if err := s.Block("a"); err != nil {
		t.Fatal(err)
	}
	a.send(t, broadcast, "from blocked a")
	b.send(t, broadcast, "to blocked a")
	if got := a.recv(t, silence); got != "" {
		t.Errorf("blocked a received %q", got)
	}
	if got := c.recv(t, arrives); got != "to blocked a" {
		t.Errorf("c: got %q, want only b's frame", got)
	}
	s.Unblock("a")
	b.send(t, broadcast, "again")
	if got := a.recv(t, arrives); got != "again" {
		t.Errorf("unblocked a: got %q", got)
	}
	c.recv(t, arrives)

	if err := s.Partition([]string{"a", "b"}, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	c.send(t, broadcast, "minority")
	if got := a.recv(t, silence) + b.recv(t, silence); got != "" {
		t.Errorf("across the partition: got %q", got)
	}
	a.send(t, broadcast, "majority")
	if got := b.recv(t, arrives); got != "majority" {
		t.Errorf("inside the partition: got %q", got)
	}
	s.Heal()
	c.send(t, broadcast, "healed")
	if got := a.recv(t, arrives); got != "healed" {
		t.Errorf("after heal: got %q", got)
	}
}

func TestControlErrors(t *testing.T) {
	s := newSwitch(t, nil)
	attach(t, s, "a", 1)
	tests := []struct {
		name string
		err  error
	}{
		{"block unknown", s.Block("ghost")},
		{"partition unknown", s.Partition([]string{"a"}, []string{"ghost"})},
		{"partition twice", s.Partition([]string{"a"}, []string{"a"})},
		{"fault unknown", s.SetFault("a", "ghost", Fault{Loss: 0.5})},
		{"bad probability", s.SetVLANFault(Fault{Loss: 1.5})},
		{"negative delay", s.SetVLANFault(Fault{Delay: -time.Second})},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: got nil error", tt.name)
		}
	}
	if _, _, err := s.AddPort("a"); err == nil {
		t.Error("a second port called a: got nil error")
	}
}

func TestFaults(t *testing.T) {
	t.Run("loss", func(t *testing.T) {
		s := newSwitch(t, nil)
		a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
		s.SetFault("a", "b", Fault{Loss: 1})
		a.send(t, broadcast, "lost")
		if got := b.recv(t, silence); got != "" {
			t.Errorf("got %q through a link that loses everything", got)
		}
		b.send(t, broadcast, "other direction")
		if got := a.recv(t, arrives); got != "other direction" {
			t.Errorf("the reverse link: got %q", got)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		s := newSwitch(t, nil)
		a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
		s.SetVLANFault(Fault{Duplicate: 1})
		a.send(t, broadcast, "twice")
		if got := b.recv(t, arrives) + b.recv(t, arrives); got != "twicetwice" {
			t.Errorf("got %q, want the frame twice", got)
		}
	})
	t.Run("delay", func(t *testing.T) {
		s := newSwitch(t, nil)
		a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
		s.SetVLANFault(Fault{Delay: 150 * time.Millisecond})
		start := time.Now()
		a.send(t, broadcast, "late")
		if got := b.recv(t, arrives); got != "late" {
			t.Fatalf("got %q", got)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("arrived after %v, want at least 150ms", d)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		s := newSwitch(t, nil)
		a, b, c := attach(t, s, "a", 1), attach(t, s, "b", 2), attach(t, s, "c", 3)
		s.SetFault("a", "b", Fault{Delay: 200 * time.Millisecond})
		a.send(t, broadcast, "first")
		c.recv(t, arrives) // the switch has taken "first" (c's link has no delay)
		s.SetFault("a", "b", Fault{Delay: 200 * time.Millisecond, Reorder: 1})
		a.send(t, broadcast, "second")
		if got := b.recv(t, arrives) + "," + b.recv(t, arrives); got != "second,first" {
			t.Errorf("got %q, want the reordered frame first", got)
		}
	})
	t.Run("rate", func(t *testing.T) {
		s := newSwitch(t, nil)
		a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
		// 10 frames of 1016 bytes at 400 kbit/s take ~200 ms.
		s.SetVLANFault(Fault{Rate: 400_000})
		start := time.Now()
		payload := string(bytes.Repeat([]byte{'x'}, 1000))
		for range 10 {
			a.send(t, broadcast, payload)
		}
		for i := range 10 {
			if got := b.recv(t, arrives); got != payload {
				t.Fatalf("frame %d: got %d bytes", i, len(got))
			}
		}
		if d := time.Since(start); d < 180*time.Millisecond {
			t.Errorf("10 frames took %v at 400 kbit/s, want at least 180ms", d)
		}
	})
}

func TestBadFramesAndSlowPort(t *testing.T) {
	s := newSwitch(t, nil)
	a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
	attach(t, s, "sleeper", 3) // never reads
	a.conn.Write(make([]byte, MaxFrame+1))
	a.conn.Write([]byte("short"))
	// Flood far more than the sleeper's socket and queue hold: the others
	// must keep talking.
	for range 3000 {
		a.send(t, broadcast, "flood")
	}
	b.send(t, a.mac, "still here")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got := a.recv(t, arrives); got == "still here" {
			break
		} else if got == "" {
			t.Fatal("a stopped receiving while another port was stuck")
		}
	}
	p, _ := s.port("a")
	if _, dropped := p.Stats(); dropped["bad length"] != 2 {
		t.Errorf("got drops %v, want 2 for bad length", dropped)
	}
}

func TestCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vlan1.pcap")
	c, err := NewCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(1, c)
	a, b := attach(t, s, "a", 1), attach(t, s, "b", 2)
	a.send(t, broadcast, "one")
	b.recv(t, arrives)
	b.send(t, a.mac, "two")
	a.recv(t, arrives)
	s.Close()
	c.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(data) != pcapMagic || binary.LittleEndian.Uint32(data[20:]) != linkEthernet {
		t.Fatalf("bad pcap header % x", data[:24])
	}
	var payloads []string
	for rest := data[24:]; len(rest) >= 16; {
		n := binary.LittleEndian.Uint32(rest[8:])
		payloads = append(payloads, string(rest[16+14:16+n]))
		rest = rest[16+n:]
	}
	if len(payloads) != 2 || payloads[0] != "one" || payloads[1] != "two" {
		t.Errorf("captured %q, want [one two]", payloads)
	}
}
