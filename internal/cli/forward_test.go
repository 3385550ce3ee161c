package cli

import (
	"testing"

	"github.com/vmlab/vmlab/internal/script"
)

// TestFixedHostPortsRunAlone: tests of a file that forwards a fixed host
// port run one at a time (two at once both bind it, and the second boot
// failed with "address already in use"); a port picked at boot (0) does
// not hold them back.
func TestFixedHostPortsRunAlone(t *testing.T) {
	for _, c := range []struct {
		src  string
		want bool
	}{
		{"m = machine(forward_ports = {18080: 80})\ndef test():\n    pass\n", true},
		{"m = machine(forward_ports = {0: 80})\ndef test():\n    pass\n", false},
		{"m = machine()\ndef test():\n    pass\n", false},
	} {
		f, err := script.Load("f.star", []byte(c.src))
		if err != nil {
			t.Fatal(err)
		}
		if got := fixedHostPorts([]*script.File{f}); got != c.want {
			t.Errorf("%q: fixedHostPorts = %v, want %v", c.src, got, c.want)
		}
	}
}
