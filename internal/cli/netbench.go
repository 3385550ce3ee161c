package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/vnet"
)

// netResult is one network's figures between two machines.
type netResult struct {
	Mbps  float64
	RTTms float64
}

// benchNetwork measures TCP throughput and ping round trip between two
// machines, first through vmlab's switch, then on QEMU's multicast socket
// network (the baseline), with the same guests and flags otherwise.
func benchNetwork(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, seconds int) (sw, mcast netResult, err error) {
	fmt.Fprintf(e.stderr, "vmlab: bench: network through the switch\n")
	if sw, err = netPair(ctx, boot, bf, seconds, false); err != nil {
		return sw, mcast, fmt.Errorf("switch: %w", err)
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: network on QEMU's multicast socket\n")
	if mcast, err = netPair(ctx, boot, bf, seconds, true); err != nil {
		return sw, mcast, fmt.Errorf("multicast: %w", err)
	}
	return sw, mcast, nil
}

// netPair boots two machines on one network and measures between them.
func netPair(ctx context.Context, boot *machine.Boot, bf bootFlags, seconds int, useMcast bool) (netResult, error) {
	var sw *vnet.Switch
	if !useMcast {
		sw = vnet.New(1, nil)
		defer sw.Close()
	}
	// A random group port keeps concurrent benchmarks apart.
	group := fmt.Sprintf("230.0.%d.%d:%d", rand.IntN(256), 1+rand.IntN(254), 20000+rand.IntN(20000))
	hosts := []agentproto.HostEntry{{Name: "a", Addrs: []string{"192.168.1.1"}}, {Name: "b", Addrs: []string{"192.168.1.2"}}}
	var ms []*machine.Machine
	defer func() {
		for _, m := range ms {
			m.Close()
		}
	}()
	for n, name := range []string{"a", "b"} {
		v4, _ := lab.Addr(1, n+1)
		nic := machine.NIC{VLAN: 1, Mcast: group,
			Interface: agentproto.Interface{MAC: lab.MAC(1, n+1), Name: "eth1", Addrs: []string{v4.String()}}}
		if sw != nil {
			_, f, err := sw.AddPort(name)
			if err != nil {
				return netResult{}, err
			}
			nic.File, nic.Mcast = f, ""
		}
		m, err := machine.New(machine.Config{Name: name, Boot: boot, MemoryMiB: bf.memory, CPUs: bf.cpus,
			NICs: []machine.NIC{nic}, Hosts: hosts})
		if err != nil {
			return netResult{}, err
		}
		ms = append(ms, m)
		if err := m.Start(ctx); err != nil {
			return netResult{}, err
		}
	}
	a, b := ms[0], ms[1]
	var r netResult
	out, err := a.Succeed(ctx, "ping -q -c 50 -i 0.02 -W 2 b | tail -1")
	if err != nil {
		return r, err
	}
	// rtt min/avg/max/mdev = 0.512/0.734/1.204/0.101 ms
	if f := strings.Split(strings.TrimSpace(out), "/"); len(f) >= 5 {
		r.RTTms, _ = strconv.ParseFloat(f[4], 64)
	}
	if _, err := b.Succeed(ctx, "/proc/1/exe guest-tput serve 5001 >/tmp/tput 2>&1 &"); err != nil {
		return r, err
	}
	if err := b.WaitForOpenPort(ctx, "", 5001, time.Minute); err != nil {
		return r, err
	}
	out, err = a.Succeed(ctx, fmt.Sprintf("/proc/1/exe guest-tput send 192.168.1.2:5001 %ds", seconds))
	if err != nil {
		return r, err
	}
	r.Mbps, err = strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		return r, fmt.Errorf("read throughput %q: %w", out, err)
	}
	return r, nil
}

// runGuestTput is the network benchmark's load, run inside the guests:
// "serve PORT" accepts connections and discards what they send; "send
// ADDR DURATION" sends as fast as it can for DURATION and prints the rate in
// megabits per second.
func runGuestTput(ctx context.Context, e *env, args []string) int {
	switch {
	case len(args) == 2 && args[0] == "serve":
		l, err := net.Listen("tcp", ":"+args[1])
		if err != nil {
			e.errorf("guest-tput: %v", err)
			return exitFail
		}
		defer l.Close()
		for {
			c, err := l.Accept()
			if err != nil {
				e.errorf("guest-tput: %v", err)
				return exitFail
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	case len(args) == 3 && args[0] == "send":
		d, err := time.ParseDuration(args[2])
		if err != nil {
			e.errorf("guest-tput: %v", err)
			return exitUsage
		}
		c, err := net.Dial("tcp", args[1])
		if err != nil {
			e.errorf("guest-tput: %v", err)
			return exitFail
		}
		buf := make([]byte, 128<<10)
		start := time.Now()
		c.SetWriteDeadline(start.Add(d))
		var sent int64
		for {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
					e.errorf("guest-tput: %v", err)
					return exitFail
				}
				break
			}
		}
		c.Close()
		fmt.Fprintf(e.stdout, "%.1f\n", float64(sent)*8/time.Since(start).Seconds()/1e6)
		return exitOK
	}
	e.errorf("usage: vmlab guest-tput serve PORT | send ADDR:PORT DURATION")
	return exitUsage
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
