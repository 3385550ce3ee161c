package lab_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
	"github.com/vmlab/vmlab/internal/vnet"
)

func TestMain(m *testing.M) { vmtest.Main(m) }

func newLab(t *testing.T, specs ...spec.Machine) (*lab.Lab, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := lab.New(vmtest.Boot(t), dir, configs(specs), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

func configs(specs []spec.Machine) []machine.Config {
	cfgs := make([]machine.Config, len(specs))
	for i, s := range specs {
		cfgs[i] = machine.Config{Machine: s}
	}
	return cfgs
}

// TestCheck checks that lab.New refuses bad declarations, all of them at
// once, before it creates anything.
func TestCheck(t *testing.T) {
	boot := &machine.Boot{}
	many := make([]spec.Machine, lab.MaxMachines+1)
	for i := range many {
		many[i].Name = fmt.Sprintf("m%d", i)
	}
	tests := []struct {
		name  string
		specs []spec.Machine
		want  string
	}{
		{"vlan 0", []spec.Machine{{Name: "a", VLANs: []int{0}}}, "VLAN 0 is out of range"},
		{"vlan 255", []spec.Machine{{Name: "a", VLANs: []int{255}}}, "VLAN 255 is out of range"},
		{"vlan twice", []spec.Machine{{Name: "a", VLANs: []int{3, 3}}}, "VLAN 3 is listed twice"},
		{"duplicate", []spec.Machine{{Name: "a"}, {Name: "a"}}, `"a" is declared twice`},
		{"too many", many, "at most 254"},
		{"name escapes the directory", []spec.Machine{{Name: "../../x"}}, `machine name "../../x": a machine name is a host name`},
		{"memory below the floor", []spec.Machine{{Name: "a", MemoryMiB: 64}}, "memory 64 MiB: a guest needs at least 128 MiB"},
		{"every problem at once", []spec.Machine{{Name: "a", VLANs: []int{0}}, {Name: "b", CPUs: 1 << 20}},
			"VLAN 0 is out of range (1..254)\nmachine b: cpus 1048576: more than the host's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			out := filepath.Join(top, "a", "b", "out")
			_, err := lab.New(boot, out, configs(tt.specs), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(top); len(entries) > 0 {
				t.Errorf("lab.New created %s/%s before refusing the declaration", top, entries[0].Name())
			}
		})
	}
}

// TestNetworks boots three machines: a and b on VLAN 1, c on VLANs 1 and 2,
// d on VLAN 2 only.
func TestNetworks(t *testing.T) {
	l, dir := newLab(t,
		spec.Machine{Name: "a"}, spec.Machine{Name: "b"},
		spec.Machine{Name: "c", VLANs: []int{1, 2}, UserNet: true},
		spec.Machine{Name: "d", VLANs: []int{2}},
	)
	a, b, c, d := l.Machine("a"), l.Machine("b"), l.Machine("c"), l.Machine("d")
	ctx := t.Context()
	for _, m := range []*machine.Machine{a, b, c, d} {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("addresses and names", func(t *testing.T) {
		out, err := c.Succeed(ctx, "cat /sys/class/net/eth1/address /sys/class/net/eth2/address /etc/hosts")
		for _, want := range []string{"52:54:00:12:01:03\n52:54:00:12:02:03\n", "192.168.1.1\ta\n", "2001:db8:1::1\ta\n",
			"192.168.1.3\tc\n", "192.168.2.4\td\n", "2001:db8:2::4\td\n"} {
			if err != nil || !strings.Contains(out, want) {
				t.Errorf("got %q, %v; want it to contain %q", out, err, want)
			}
		}
		out, err = c.Succeed(ctx, "ip -o addr show eth2 | grep -o 'inet6\\? [^ ]*'")
		if err != nil || !strings.Contains(out, "inet 192.168.2.3/24") || !strings.Contains(out, "inet6 2001:db8:2::3/64") {
			t.Errorf("eth2: got %q, %v", out, err)
		}
	})

	t.Run("reachability and isolation", func(t *testing.T) {
		tests := []struct {
			from *machine.Machine
			to   string
			ok   bool
		}{
			{a, "b", true},
			{a, "192.168.1.3", true},
			{a, "2001:db8:1::2", true},
			{d, "192.168.2.3", true},
			{a, "192.168.2.4", false}, // a is not on VLAN 2
			{d, "192.168.1.1", false}, // d is not on VLAN 1
		}
		for _, tt := range tests {
			_, err := tt.from.Succeed(ctx, "ping -c 1 -W 2 "+tt.to)
			if (err == nil) != tt.ok {
				t.Errorf("%s -> %s: got error %v, want reachable %v", tt.from.Name(), tt.to, err, tt.ok)
			}
		}
	})

	t.Run("block and unblock", func(t *testing.T) {
		if err := l.Block("b"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Fail(ctx, "ping -c 1 -W 1 b"); err != nil {
			t.Error(err)
		}
		l.Unblock("b")
		if _, err := a.Succeed(ctx, "ping -c 1 -W 2 b"); err != nil {
			t.Error(err)
		}
		if err := l.Block("c", 2); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Fail(ctx, "ping -c 1 -W 1 192.168.2.3"); err != nil {
			t.Errorf("VLAN 2 should be cut: %v", err)
		}
		if _, err := a.Succeed(ctx, "ping -c 1 -W 2 c"); err != nil {
			t.Errorf("VLAN 1 should still work: %v", err)
		}
		l.Unblock("c")
		if err := l.Block("ghost"); err == nil || !strings.Contains(err.Error(), "ghost") {
			t.Errorf("blocking an unknown machine: got %v", err)
		}
		if err := l.Block("a", 2); err == nil {
			t.Errorf("blocking a on a VLAN it is not on: got nil error")
		}
	})

	t.Run("delay", func(t *testing.T) {
		if err := l.SetLinkFault("a", "b", 0, vnet.Fault{Delay: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		out, err := a.Succeed(ctx, "ping -c 1 -W 5 b | grep -o 'time=[0-9.]*'")
		l.SetLinkFault("a", "b", 0, vnet.Fault{})
		var ms float64
		fmt.Sscanf(strings.TrimSpace(out), "time=%f", &ms)
		if err != nil || ms < 300 {
			t.Errorf("got %q, %v; want a round trip of at least 300 ms", out, err)
		}
	})

	t.Run("forward port", func(t *testing.T) {
		if _, err := c.Succeed(ctx, "mkdir -p /srv/www && echo forwarded > /srv/www/index.html && busybox httpd -p 8080 -h /srv/www"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitForOpenPort(ctx, "", 8080, time.Minute); err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		if err := c.ForwardPort(ctx, port, 8080); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "forwarded\n" {
			t.Errorf("got %q through the forwarded port", body)
		}
		if err := a.ForwardPort(ctx, port+1, 80); err == nil {
			t.Error("forwarding on a machine without a user-mode NIC: got nil error")
		}
		// restrict=on: the guest cannot open connections to the host (QEMU's
		// user network maps 10.0.2.2 to the host's loopback) or beyond.
		host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer host.Close()
		hostPort := host.Listener.Addr().(*net.TCPAddr).Port
		if _, err := c.Fail(ctx, fmt.Sprintf("curl -sf --max-time 2 http://10.0.2.2:%d/", hostPort)); err != nil {
			t.Errorf("eth0 must not reach the host: %v", err)
		}
	})

	t.Run("capture", func(t *testing.T) {
		l.Close()
		for _, v := range []int{1, 2} {
			n := countFrames(t, filepath.Join(dir, fmt.Sprintf("vlan%d.pcap", v)))
			if n < 4 {
				t.Errorf("vlan%d.pcap has %d frames, want the pings", v, n)
			}
		}
	})
}

// TestPartition: three machines; the majority side keeps talking, the
// minority is cut off, heal restores it.
func TestPartition(t *testing.T) {
	l, _ := newLab(t, spec.Machine{Name: "n1"}, spec.Machine{Name: "n2"}, spec.Machine{Name: "n3"})
	ctx := t.Context()
	n1, n2, n3 := l.Machine("n1"), l.Machine("n2"), l.Machine("n3")
	for _, m := range []*machine.Machine{n1, n2, n3} {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Partition([]string{"n1", "n2"}, []string{"n3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Succeed(ctx, "ping -c 1 -W 2 n2"); err != nil {
		t.Errorf("majority: %v", err)
	}
	for _, peer := range []string{"n1", "n2"} {
		if _, err := n3.Fail(ctx, "ping -c 1 -W 1 "+peer); err != nil {
			t.Errorf("minority reached %s: %v", peer, err)
		}
	}
	l.Heal()
	// Neighbour discovery marked n1 unreachable during the partition; the
	// kernel tries again within a few seconds.
	if _, err := n3.WaitUntilSucceeds(ctx, "ping -c 1 -W 1 n1", 30*time.Second); err != nil {
		t.Errorf("after heal: %v", err)
	}
	if err := l.Partition([]string{"n1"}, []string{"nobody"}); err == nil {
		t.Error("partition with an unknown machine: got nil error")
	}
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func countFrames(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rest := data[24:]; len(rest) >= 16; n++ {
		rest = rest[16+binary.LittleEndian.Uint32(rest[8:]):]
	}
	return n
}
