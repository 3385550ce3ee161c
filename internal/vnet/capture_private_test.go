package vnet

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCapturePrivate: a capture holds every frame of its network, so only
// its owner may read it (0600), also over an old file readable by others.
func TestCapturePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vlan1.pcap")
	os.WriteFile(path, []byte("old"), 0o644)
	c, err := NewCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 || info.Size() != 24 {
		t.Errorf("got mode %v, size %d; want 0600 and the 24-byte header", got, info.Size())
	}
}
