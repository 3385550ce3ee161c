// Package vnet owns the virtual networks between machines: one learning L2
// switch per VLAN, running in the driver process. QEMU attaches each NIC
// through one end of a SOCK_DGRAM socketpair (a datagram is a frame, so no
// framing can go wrong), the switch holds the other end. There is no root,
// no multicast, no file on disk another process could open.
//
// The switch is where faults live: a port can be cut (block), the VLAN can
// be partitioned into groups that cannot reach each other, and each link
// (or the whole VLAN) can delay, lose, duplicate, reorder and rate-limit
// frames. Every frame a port sends is written to the VLAN's capture file
// (pcap) before faults apply, so the capture shows what the machines sent.
//
// Concurrency: each port has one reading goroutine (frames in) and one
// writing goroutine (frames out, from a bounded queue); a port whose queue is
// full drops the frame rather than stall the sender, as a real switch does.
// A frame due at once, behind nothing, is written straight from the reading
// goroutine with MSG_DONTWAIT. The sockets are read with blocking reads, not
// through Go's network poller: the kernel then wakes the reading thread
// directly, which saves a poller-to-goroutine hand-off on every frame (with
// it, ping between two guests was 0.2-0.3 ms slower through the switch than
// on QEMU's multicast socket; without it, within noise). Faults may change at
// any time from any goroutine. Close stops and waits for everything.
package vnet

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// MaxFrame is the largest frame the switch carries: a 1500-byte payload, the
// Ethernet header and a VLAN tag. Larger datagrams are dropped and counted.
const MaxFrame = 1500 + 14 + 4

// minFrame is an Ethernet header.
const minFrame = 14

// queueLen bounds each port's outgoing queue (frames).
const queueLen = 1024

// Switch is one VLAN.
type Switch struct {
	VLAN int

	capture *Capture // nil: no capture

	mu        sync.Mutex
	ports     map[string]*Port
	macs      map[[6]byte]*Port // learned source addresses
	groups    map[string]int    // partition: port name -> group; nil: none
	vlanFault Fault
	linkFault map[[2]string]Fault // (from, to) -> fault
	closed    bool

	wg sync.WaitGroup
}

// New returns a switch for vlan. When capture is not nil, every frame is
// written to it.
func New(vlan int, capture *Capture) *Switch {
	return &Switch{
		VLAN: vlan, capture: capture,
		ports: make(map[string]*Port), macs: make(map[[6]byte]*Port),
		linkFault: make(map[[2]string]Fault),
	}
}

// Port is a switch port, named after the machine it connects.
type Port struct {
	Name string
	sw   *Switch
	fd   int // our end of the socketpair, in blocking mode
	out  *outQueue

	mu       sync.Mutex
	down     bool // blocked: frames neither leave nor arrive
	received int64
	dropped  map[string]int64
}

// AddPort adds a port called name and returns the file QEMU's NIC uses
// (pass it to QEMU and close it after QEMU has started).
func (s *Switch) AddPort(name string) (*Port, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("add port %s to vlan %d: %w", name, s.VLAN, err)
	}
	theirs := os.NewFile(uintptr(fds[1]), fmt.Sprintf("vlan%d-%s", s.VLAN, name))
	p := &Port{Name: name, sw: s, fd: fds[0], dropped: make(map[string]int64)}
	p.out = newOutQueue(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ports[name] != nil {
		syscall.Close(fds[0])
		theirs.Close()
		if s.closed {
			return nil, nil, fmt.Errorf("add port %s to vlan %d: switch closed", name, s.VLAN)
		}
		return nil, nil, fmt.Errorf("add port %s to vlan %d: the name is taken", name, s.VLAN)
	}
	s.ports[name] = p
	s.wg.Go(p.read)
	s.wg.Go(p.out.run)
	return p, theirs, nil
}

// Close stops the switch and waits for its goroutines. It is idempotent.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ports := s.ports
	s.mu.Unlock()
	for _, p := range ports {
		// Shutdown wakes the blocked read and write; the fd is closed once
		// nothing uses it.
		syscall.Shutdown(p.fd, syscall.SHUT_RDWR)
		p.out.close()
	}
	s.wg.Wait()
	for _, p := range ports {
		syscall.Close(p.fd)
	}
	return nil
}

// read forwards the frames the port's machine sends.
func (p *Port) read() {
	buf := make([]byte, 65536)
	for {
		n, err := syscall.Read(p.fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 { // n == 0: shut down by Close
			return
		}
		if n < minFrame || n > MaxFrame {
			p.drop("bad length")
			continue
		}
		frame := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		p.received++
		p.mu.Unlock()
		p.sw.forward(p, frame, time.Now())
	}
}

func (p *Port) drop(reason string) {
	p.mu.Lock()
	p.dropped[reason]++
	p.mu.Unlock()
}

// Stats returns the frames the port received from its machine and the frames
// dropped by reason.
func (p *Port) Stats() (received int64, dropped map[string]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := make(map[string]int64, len(p.dropped))
	for k, v := range p.dropped {
		d[k] = v
	}
	return p.received, d
}

func (p *Port) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// forward sends a frame from src to the port that owns its destination
// address, or floods it.
func (s *Switch) forward(src *Port, frame []byte, at time.Time) {
	// The capture is written after the frame is on its way, so that its
	// write(2) does not add to every frame's latency; the record carries
	// the time the frame arrived.
	if s.capture != nil {
		defer s.capture.Write(at, frame)
	}
	if src.isDown() {
		return
	}
	var dst, srcMAC [6]byte
	copy(dst[:], frame[0:6])
	copy(srcMAC[:], frame[6:12])
	s.mu.Lock()
	if srcMAC[0]&1 == 0 {
		s.macs[srcMAC] = src
	}
	var targets []*Port
	if to, ok := s.macs[dst]; ok && dst[0]&1 == 0 {
		if to != src {
			targets = []*Port{to}
		}
	} else {
		for _, p := range s.ports {
			if p != src {
				targets = append(targets, p)
			}
		}
	}
	type send struct {
		to    *Port
		fault Fault
	}
	var sends []send
	for _, to := range targets {
		if !s.reachableLocked(src, to) {
			continue
		}
		sends = append(sends, send{to, s.faultLocked(src.Name, to.Name)})
	}
	s.mu.Unlock()
	for _, sd := range sends {
		if sd.to.isDown() {
			continue
		}
		sd.fault.apply(sd.to.out, frame, at)
	}
}

func (s *Switch) reachableLocked(a, b *Port) bool {
	if s.groups == nil {
		return true
	}
	ga, oka := s.groups[a.Name]
	gb, okb := s.groups[b.Name]
	return oka && okb && ga == gb
}

// faultLocked returns the fault on the link from → to, or the VLAN's.
func (s *Switch) faultLocked(from, to string) Fault {
	if f, ok := s.linkFault[[2]string{from, to}]; ok {
		return f
	}
	return s.vlanFault
}
