package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vnet"
)

// netResult is one network's figures between two machines.
type netResult struct {
	Mbps  float64
	RTTms float64
}

// benchNetwork measures TCP throughput and ping round trip between two
// machines through vmlab's switch and between two on QEMU's multicast socket
// network (the baseline), same guests and flags otherwise. Both pairs are
// booted first and measured in alternation, rounds times, and the medians
// count: a change in the host's load then hits both alike.
func benchNetwork(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, seconds, rounds int) (sw, mcast netResult, err error) {
	fmt.Fprintf(e.stderr, "vmlab: bench: network: booting two pairs\n")
	swPair, err := newNetPair(ctx, boot, bf, false)
	if err != nil {
		return sw, mcast, fmt.Errorf("switch: %w", err)
	}
	defer swPair.close()
	mcPair, err := newNetPair(ctx, boot, bf, true)
	if err != nil {
		return sw, mcast, fmt.Errorf("multicast: %w", err)
	}
	defer mcPair.close()
	var swRuns, mcRuns []netResult
	for i := range rounds {
		fmt.Fprintf(e.stderr, "vmlab: bench: network: round %d of %d\n", i+1, rounds)
		r, err := swPair.measure(ctx, seconds)
		if err != nil {
			return sw, mcast, fmt.Errorf("switch: %w", err)
		}
		swRuns = append(swRuns, r)
		if r, err = mcPair.measure(ctx, seconds); err != nil {
			return sw, mcast, fmt.Errorf("multicast: %w", err)
		}
		mcRuns = append(mcRuns, r)
	}
	return medianNet(swRuns), medianNet(mcRuns), nil
}

func medianNet(rs []netResult) netResult {
	var mbps, rtt []float64
	for _, r := range rs {
		mbps, rtt = append(mbps, r.Mbps), append(rtt, r.RTTms)
	}
	slices.Sort(mbps)
	slices.Sort(rtt)
	return netResult{Mbps: mbps[len(mbps)/2], RTTms: rtt[len(rtt)/2]}
}

// netPair is two machines, a and b, on one network, b running the
// throughput sink.
type netPair struct {
	sw   *vnet.Switch // nil on the multicast network
	a, b *machine.Machine
}

func newNetPair(ctx context.Context, boot *machine.Boot, bf bootFlags, useMcast bool) (*netPair, error) {
	p := &netPair{}
	if !useMcast {
		p.sw = vnet.New(1, nil)
	}
	// A random group port keeps concurrent benchmarks apart.
	group := fmt.Sprintf("230.0.%d.%d:%d", rand.IntN(256), 1+rand.IntN(254), 20000+rand.IntN(20000))
	hosts := []agentproto.HostEntry{{Name: "a", Addrs: []string{"192.168.1.1"}}, {Name: "b", Addrs: []string{"192.168.1.2"}}}
	for n, name := range []string{"a", "b"} {
		v4, _ := lab.Addr(1, n+1)
		nic := machine.NIC{VLAN: 1, Mcast: group,
			Interface: agentproto.Interface{MAC: lab.MAC(1, n+1), Name: "eth1", Addrs: []string{v4.String()}}}
		if p.sw != nil {
			_, f, err := p.sw.AddPort(name)
			if err != nil {
				p.close()
				return nil, err
			}
			nic.File, nic.Mcast = f, ""
		}
		m, err := machine.New(machine.Config{Machine: spec.Machine{Name: name, MemoryMiB: bf.memory, CPUs: bf.cpus}, Boot: boot,
			NICs: []machine.NIC{nic}, Hosts: hosts})
		if err != nil {
			p.close()
			return nil, err
		}
		if n == 0 {
			p.a = m
		} else {
			p.b = m
		}
		if err := m.Start(ctx); err != nil {
			p.close()
			return nil, err
		}
	}
	if _, err := p.b.Succeed(ctx, "/proc/1/exe guest-tput serve 5001 >/dev/null 2>&1 &"); err != nil {
		p.close()
		return nil, err
	}
	if err := p.b.WaitForOpenPort(ctx, "", 5001, time.Minute); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *netPair) measure(ctx context.Context, seconds int) (netResult, error) {
	var r netResult
	out, err := p.a.Succeed(ctx, "ping -c 50 -i 0.02 -W 2 b")
	if err != nil {
		return r, err
	}
	// The median of the replies' "time=0.734 ms": one slow reply (the host
	// is busy elsewhere) moves an average, not a median.
	var times []float64
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "time="); ok {
			if ms, err := strconv.ParseFloat(v, 64); err == nil {
				times = append(times, ms)
			}
		}
	}
	if len(times) == 0 {
		return r, fmt.Errorf("ping b: no replies in %q", out)
	}
	slices.Sort(times)
	r.RTTms = times[len(times)/2]
	out, err = p.a.Succeed(ctx, fmt.Sprintf("/proc/1/exe guest-tput send 192.168.1.2:5001 %ds", seconds))
	if err != nil {
		return r, err
	}
	if r.Mbps, err = strconv.ParseFloat(strings.TrimSpace(out), 64); err != nil {
		return r, fmt.Errorf("read throughput %q: %w", out, err)
	}
	return r, nil
}

func (p *netPair) close() {
	for _, m := range []*machine.Machine{p.a, p.b} {
		if m != nil {
			m.Close()
		}
	}
	if p.sw != nil {
		p.sw.Close()
	}
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
