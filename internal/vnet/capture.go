package vnet

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"
)

// Capture writes frames to a pcap file (the classic format: tcpdump, tshark
// and Wireshark read it). Each frame is written with one write(2), so the
// file is complete up to the last frame whenever the run stops, even killed.
type Capture struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
	err error
}

// pcap constants: magic for microsecond timestamps, version 2.4, snap length,
// link type Ethernet.
const (
	pcapMagic    = 0xa1b2c3d4
	pcapSnapLen  = 65535
	linkEthernet = 1
)

// NewCapture creates path, readable by its owner only (0600: it holds
// every frame of the network), and writes the pcap header.
func NewCapture(path string) (*Capture, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err == nil {
		err = f.Chmod(0o600) // a file that existed keeps its mode otherwise
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("create capture: %w", err)
	}
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkEthernet)
	if _, err := f.Write(h); err != nil {
		f.Close()
		return nil, fmt.Errorf("write capture header: %w", err)
	}
	return &Capture{f: f}, nil
}

// Write records one frame seen at t.
func (c *Capture) Write(t time.Time, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.buf = c.buf[:0]
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(t.Unix()))
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(t.Nanosecond()/1000))
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(len(frame)))
	c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(len(frame)))
	c.buf = append(c.buf, frame...)
	_, c.err = c.f.Write(c.buf)
}

// Close closes the file and returns the first write error, if any.
func (c *Capture) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.f.Close(); c.err == nil {
		c.err = err
	}
	return c.err
}
