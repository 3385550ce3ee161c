package machine

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// The host's CPU in a KVM machine's snapshot key: under KVM the guest
// runs with -cpu host, so the CPU model and flags its kernel saw at the
// snapshot point (and chose its code paths by) are the host's, and its
// TSC runs at the host's frequency. A snapshot cached on one host and
// restored on another (a CI cache) must then not match.

var hostCPUOnce = sync.OnceValue(func() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer f.Close()
	return fmt.Sprintf("%s tsc %d MHz", cpuIdentity(f), roundTSCMHz(hostTSCkHz()))
})

// hostCPU names the host's CPU for the snapshot key.
func hostCPU() string { return hostCPUOnce() }

// cpuIdentity returns the fields of /proc/cpuinfo's first processor that
// say what a guest under -cpu host sees: vendor, family, model, its name,
// stepping and flags.
func cpuIdentity(r io.Reader) string {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" && len(out) > 0 {
			break // the first processor's block ends
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k = strings.TrimSpace(k); k {
		case "vendor_id", "cpu family", "model", "model name", "stepping", "flags":
			out = append(out, k+"="+strings.TrimSpace(v))
		}
	}
	return strings.Join(out, "; ")
}

// roundTSCMHz rounds a measured TSC frequency to 100 MHz: the measure
// varies by a few kHz from one process to the next, which must not change
// the key; two hosts whose TSCs differ by less have the same model name.
func roundTSCMHz(kHz int64) int64 { return (kHz + 50_000) / 100_000 * 100 }
