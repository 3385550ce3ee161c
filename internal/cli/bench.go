package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// benchResult holds the figures of one `vmlab bench` run. The JSON names are
// a stable interface for scripts.
type benchResult struct {
	Accel         string  `json:"accel"`
	Kernel        string  `json:"kernel"`
	FloorS        float64 `json:"floor_s"`
	BootS         float64 `json:"boot_s"`
	BootRatio     float64 `json:"boot_ratio"`
	RTTMedianMS   float64 `json:"rtt_median_ms"`
	RTTP99MS      float64 `json:"rtt_p99_ms"`
	WaitLatencyMS float64 `json:"wait_latency_ms"`
	// ChannelRTTMS is the round trip of a request that starts no process
	// (a wait for "/", which exists): the channel's share of (c).
	ChannelRTTMS float64 `json:"channel_rtt_ms"`
	// ProcessFloorMS is what a process costs the guest itself: a bash
	// subshell's fork, exit and wait, timed by the guest's clock. A
	// command through the fork server does that and more, so the channel
	// and this floor are the part of (c) that no agent can remove.
	ProcessFloorMS float64 `json:"process_floor_ms"`
	Runs           int     `json:"runs"`
	Commands       int     `json:"commands"`

	// The network section (absent with -net=false): two machines through
	// vmlab's switch against the same two on QEMU's multicast socket.
	SwitchMbps      float64 `json:"switch_mbps,omitempty"`
	McastMbps       float64 `json:"mcast_mbps,omitempty"`
	ThroughputRatio float64 `json:"throughput_ratio,omitempty"`
	SwitchRTTMS     float64 `json:"switch_rtt_ms,omitempty"`
	McastRTTMS      float64 `json:"mcast_rtt_ms,omitempty"`

	// RunS is `vmlab run` of the client/server example, end to end: load,
	// boot both machines, the test, shutdown (absent without the file),
	// as it runs by default: its machines restored from the cache's
	// snapshots, which an untimed run before it takes when missing.
	// RunColdS is the same with -snapshot off.
	RunS     float64 `json:"run_s,omitempty"`
	RunColdS float64 `json:"run_cold_s,omitempty"`

	// The driver's peak RSS while a command prints OutputMiB, and while one
	// prints nothing; OutputS is how much longer the printing took (see
	// benchOutput; absent with -output=0).
	OutputMiB     int     `json:"output_mib,omitempty"`
	OutputPeakMiB float64 `json:"output_peak_mib,omitempty"`
	OutputBaseMiB float64 `json:"output_base_mib,omitempty"`
	OutputS       float64 `json:"output_s,omitempty"`
	setupBench            // setup_1000_files_s, setup_files_boot_s, setup_plain_boot_s
	rebootBench           // reboot_s
	restoreBench          // restore_s, restore_pss_mib, cold_pss_mib
	shellBench            // shell_rtt_ms
	ptyBench              // pty_echo_ms
	ttyBench              // tty_text_ms
	systemdBench          // systemd_boot_s, nfs_example_s
	screenBench           // display_boot_s, screenshot_ms
	ocrBench              // ocr_ms, ocr_wait_ms
	coverageBench         // coverage_off_s, coverage_on_s, coverage_overhead, coverage_merge_s
	imageBench            // image_build_s, image_boot_ratio, image_io_ratio
	scaleBench            // shard_speedup, shard_merge_s, cached_run_s, ...
	labBench              // lab_16_s, lab_16_mib, lab_16_restored_s, lab_16_restored_mib
}

// runBench measures, in one run: (a) the floor, the kernel booting a trivial
// init that powers off; (b) vmlab's Start to the first Succeed("true");
// (c) the round trip of Succeed("true"); (d) how long WaitForOpenPort takes
// to return after a port opens in the guest.
func runBench(ctx context.Context, e *env, args []string) int {
	if os.Getenv(benchOutputChild) != "" {
		return runOutputChild(ctx, e, args)
	}
	fs := newFlagSet(e, "bench", "")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vmlab bench [flags]\n")
		fs.PrintDefaults()
	}
	var bf bootFlags
	bf.register(fs)
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	runs := fs.Int("runs", 3, "boots to measure for (a) and (b); the median counts")
	n := fs.Int("n", 1000, "commands for the round-trip figure")
	network := fs.Bool("net", true, "measure the network too (4 more boots)")
	example := fs.String("example", "examples/client_server.star", "test file to time end to end with vmlab run (\"\" to skip)")
	systemd := fs.Bool("systemd", true, "measure systemd guests: boots to multi-user.target and the NFS example")
	nfsExample := fs.String("nfs-example", "examples/nfs.star", "the NFS example, timed end to end with vmlab run (\"\" to skip)")
	coverageExample := fs.String("coverage-example", "examples/coverage.star", "the coverage example, timed with and without -coverage (\"\" to skip)")
	imageRef := fs.String("image", "debian:bookworm", "machine image to build (a fresh cache), boot and read files on against the host root (\"\" to skip)")
	netSeconds := fs.Int("net-seconds", 3, "seconds of bulk transfer per measurement")
	netRounds := fs.Int("net-rounds", 3, "alternating measurements of each network; the median counts")
	shardFiles := fs.String("shard-files", strings.Join(benchScaleFiles, ","), "comma-separated test files to run as 1 process and as 2 shards, then again cached (\"\" to skip)")
	lab := fs.Bool("lab", true, "measure a lab of 16 machines: start_all, a ping each, host memory (~25 s under TCG on 2 quiet cores); with -restore, again restored from a snapshot")
	labOnly := fs.Int("lab-only", 0, "measure only a lab of `N` machines of -memory MiB (boot, a ring of pings, PSS, shutdown) and print it")
	restore := fs.Bool("restore", true, "measure machines restored from a snapshot (docs/snapshots.md) against cold boots")
	outputMiB := fs.Int("output", 1024, "`MiB` a command prints for the driver's peak memory figure (0 to skip)")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 && *runs >= 1 && *n >= 1 && *labOnly >= 0 }); !ok {
		return code
	}
	if v := cmp.Or(bf.opts.Snapshot, os.Getenv("VMLAB_SNAPSHOT")); v != "" && v != "on" && v != "off" {
		e.errorf("bench: snapshot: unknown value %q (want on or off)", v)
		return exitUsage
	}
	restoredLab := snapshotWanted(bf)
	// Every figure boots cold but those that measure restores, which
	// take their snapshots in a temporary directory (snapshotBoot), and
	// the example's, which runs as vmlab run does by default.
	bf.opts.Snapshot = "off"
	boot, err := bf.prepare(e)
	if err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	if *labOnly > 0 {
		return runLabOnly(ctx, e, boot, bf, *labOnly, restoredLab, *asJSON)
	}
	r, err := bench(ctx, e, boot, bf, *runs, *n)
	if err != nil {
		e.errorf("bench: %v", err)
		return exitFail
	}
	if err := r.benchSetup(ctx, e, boot, bf, *runs); err != nil {
		e.errorf("bench: %v", err)
		return exitFail
	}
	if err := r.benchReboot(ctx, e, boot, bf, *runs, r.FloorS); err != nil {
		e.errorf("bench: reboot: %v", err)
		return exitFail
	}
	if *restore {
		if err := r.benchRestore(ctx, e, bf, *runs, r.FloorS); err != nil {
			e.errorf("bench: restore: %v", err)
			return exitFail
		}
	}
	if err := r.benchShell(ctx, e, boot, bf); err != nil {
		e.errorf("bench: shell: %v", err)
		return exitFail
	}
	if err := r.benchScreen(ctx, e, boot, bf); err != nil {
		e.errorf("bench: screen: %v", err)
		return exitFail
	}
	if err := r.benchOCR(ctx, e, boot, bf); err != nil {
		e.errorf("bench: OCR: %v", err)
		return exitFail
	}
	if *systemd {
		if err := r.benchSystemd(ctx, e, boot, bf, *runs, r.FloorS); err != nil {
			e.errorf("bench: systemd: %v", err)
			return exitFail
		}
		if err := r.benchNFSExample(ctx, e, *nfsExample); err != nil {
			e.errorf("bench: nfs example: %v", err)
			return exitFail
		}
	}
	if err := r.benchImage(ctx, e, boot, bf, *runs, *imageRef); err != nil {
		e.errorf("bench: image: %v", err)
		return exitFail
	}
	if err := r.benchExample(ctx, e, *example); err != nil {
		e.errorf("bench: %v", err)
		return exitFail
	}
	if err := r.benchLab(ctx, e, bf, !*lab, *restore && restoredLab); err != nil {
		e.errorf("bench: lab: %v", err)
		return exitFail
	}
	if err := r.benchCoverage(ctx, e, *coverageExample); err != nil {
		e.errorf("bench: coverage example: %v", err)
		return exitFail
	}
	if err := r.benchScale(ctx, e, scaleFiles(*shardFiles)); err != nil {
		e.errorf("bench: shards: %v", err)
		return exitFail
	}
	if *network {
		sw, mc, err := benchNetwork(ctx, e, boot, bf, *netSeconds, max(*netRounds, 1))
		if err != nil {
			e.errorf("bench: network: %v", err)
			return exitFail
		}
		r.SwitchMbps, r.McastMbps, r.SwitchRTTMS, r.McastRTTMS = sw.Mbps, mc.Mbps, sw.RTTms, mc.RTTms
		if mc.Mbps > 0 {
			r.ThroughputRatio = sw.Mbps / mc.Mbps
		}
	}
	if err := r.addOutput(ctx, e, bf, *outputMiB); err != nil {
		e.errorf("bench: output: %v", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printBench(e.stdout, r)
	}
	return exitOK
}

func bench(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs, n int) (*benchResult, error) {
	r := &benchResult{Accel: boot.Accel.Name, Kernel: boot.Kernel.Version, Runs: runs, Commands: n}
	cache, err := machine.CacheDir("")
	if err != nil {
		return nil, err
	}
	var floors, boots []time.Duration
	var last *machine.Machine
	defer func() {
		if last != nil {
			last.Close()
		}
	}()
	// Floor and vmlab boots alternate so that a change in the host's load
	// hits both alike.
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: boot %d of %d\n", i+1, runs)
		d, err := boot.RunFloor(ctx, boot.Accel, cache, bf.memory, bf.cpus)
		if err != nil {
			return nil, err
		}
		floors = append(floors, d)
		if last != nil {
			last.Close()
		}
		last, err = machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus}, Boot: boot})
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if _, err := last.Succeed(ctx, "true"); err != nil {
			return nil, err
		}
		boots = append(boots, time.Since(start))
	}
	r.FloorS = median(floors).Seconds()
	r.BootS = median(boots).Seconds()
	r.BootRatio = r.BootS / r.FloorS

	fmt.Fprintf(e.stderr, "vmlab: bench: %d round trips\n", n)
	rtts := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := last.Succeed(ctx, "true"); err != nil {
			return nil, err
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	r.RTTMedianMS = ms(rtts[len(rtts)/2])
	r.RTTP99MS = ms(rtts[min(len(rtts)-1, len(rtts)*99/100)])
	var chans []time.Duration
	for range 200 {
		start := time.Now()
		if err := last.WaitForFile(ctx, "/", time.Minute); err != nil {
			return nil, err
		}
		chans = append(chans, time.Since(start))
	}
	r.ChannelRTTMS = ms(median(chans))
	if r.ProcessFloorMS, err = processFloor(ctx, last); err != nil {
		return nil, err
	}

	fmt.Fprintf(e.stderr, "vmlab: bench: wait latency\n")
	lat, err := waitLatency(ctx, last, 10)
	if err != nil {
		return nil, err
	}
	r.WaitLatencyMS = ms(lat)
	if err := r.benchPTY(ctx, e, last); err != nil {
		return nil, err
	}
	if err := r.benchTTY(ctx, e, last); err != nil {
		return nil, err
	}
	return r, nil
}

// processFloor times, by the guest's clock, batches of bash subshells
// (`(true)`: a fork of a running bash, its exit and the wait, as the
// fork server's clone of bash, without the agent) and returns the median
// batch's time per subshell.
func processFloor(ctx context.Context, m *machine.Machine) (float64, error) {
	const batches, per = 5, 100
	var each []time.Duration
	for range batches {
		out, err := m.Succeed(ctx, fmt.Sprintf(`s=$EPOCHREALTIME; for ((i = 0; i < %d; i++)); do (true); done; echo "$s $EPOCHREALTIME"`, per))
		if err != nil {
			return 0, err
		}
		var start, end float64
		if _, err := fmt.Sscan(out, &start, &end); err != nil || end < start {
			return 0, fmt.Errorf("time bash subshells: the guest printed %q", out)
		}
		each = append(each, time.Duration((end-start)/per*float64(time.Second)))
	}
	return ms(median(each)), nil
}

// waitLatency measures how long WaitForOpenPort takes to return after the
// port opens. The port is opened by this binary in the guest
// (`guest-listen`), which notes the guest's clock at listen(2); the guest's
// clock is related to the host's by the round trip with the least delay, so
// the figure is good to about half that round trip (~1 ms).
func waitLatency(ctx context.Context, m *machine.Machine, samples int) (time.Duration, error) {
	offset, err := clockOffset(ctx, m)
	if err != nil {
		return 0, err
	}
	var lats []time.Duration
	for i := range samples {
		port := 20000 + i
		file := fmt.Sprintf("/tmp/listen-%d", port)
		// The listener waits 200 ms before opening the port, so the host's
		// wait is surely running by then.
		cmd := fmt.Sprintf("/proc/1/exe guest-listen %d 200ms 10s > %s 2>&1 &", port, file)
		if _, err := m.Succeed(ctx, cmd); err != nil {
			return 0, err
		}
		if err := m.WaitForOpenPort(ctx, "127.0.0.1", port, time.Minute); err != nil {
			return 0, err
		}
		returned := time.Now()
		out, err := m.WaitUntilSucceeds(ctx, "test -s "+file+" && cat "+file, 30*time.Second)
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read listen time: %q: %w", out, err)
		}
		opened := time.Unix(0, ns).Add(-offset)
		lats = append(lats, returned.Sub(opened))
	}
	return median(lats), nil
}

// clockOffset estimates guest clock minus host clock.
func clockOffset(ctx context.Context, m *machine.Machine) (time.Duration, error) {
	best, offset := time.Duration(1<<62), time.Duration(0)
	for range 20 {
		t0 := time.Now()
		out, err := m.Succeed(ctx, "date +%s%N")
		t1 := time.Now()
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read guest clock: %q: %w", out, err)
		}
		if rtt := t1.Sub(t0); rtt < best {
			mid := t0.Add(rtt / 2)
			best, offset = rtt, time.Unix(0, ns).Sub(mid)
		}
	}
	return offset, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printBench(w io.Writer, r *benchResult) {
	fmt.Fprintf(w, "vmlab bench: accelerator %s, kernel %s, median of %d boots, %d commands\n\n", r.Accel, r.Kernel, r.Runs, r.Commands)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measure\tvalue\ttarget\t\n")
	fmt.Fprintf(tw, "(a) floor: trivial init, QEMU start to exit\t%.2f s\tbaseline\t\n", r.FloorS)
	fmt.Fprintf(tw, "(b) vmlab: Start to first Succeed(\"true\")\t%.2f s (%.2fx floor)\t<= 1.15x\t%s\n", r.BootS, r.BootRatio, verdict(r.BootRatio <= 1.15))
	fmt.Fprintf(tw, "(c) Succeed(\"true\") round trip, median\t%.2f ms\t<= 5 ms\t%s\n", r.RTTMedianMS, verdict(r.RTTMedianMS <= 5))
	fmt.Fprintf(tw, "(c) Succeed(\"true\") round trip, p99\t%.2f ms\t<= 20 ms\t%s\n", r.RTTP99MS, verdict(r.RTTP99MS <= 20))
	fmt.Fprintf(tw, "    of which the channel (a request that starts no process)\t%.2f ms\t\t\n", r.ChannelRTTMS)
	fmt.Fprintf(tw, "    the guest's own cost of a process: a bash subshell's fork, exit and wait\t%.2f ms\t\t\n", r.ProcessFloorMS)
	fmt.Fprintf(tw, "(d) port opens -> WaitForOpenPort returns\t%.2f ms\t<= 50 ms\t%s\n", r.WaitLatencyMS, verdict(r.WaitLatencyMS <= 50))
	r.setupBench.print(tw)
	r.rebootBench.print(tw)
	r.restoreBench.print(tw)
	r.shellBench.print(tw)
	r.ptyBench.print(tw)
	r.ttyBench.print(tw)
	r.systemdBench.print(tw)
	r.screenBench.print(tw)
	r.ocrBench.print(tw)
	if r.RunS > 0 {
		fmt.Fprintf(tw, "vmlab run examples/client_server.star, wall time, restored (the default)\t%.2f s (%.1fx floor)\t<= 3 s\t%s\n",
			r.RunS, r.RunS/r.FloorS, verdict(r.RunS <= 3))
		fmt.Fprintf(tw, "vmlab run examples/client_server.star, wall time, -snapshot off\t%.2f s (%.1fx floor)\t<= 10 s\t%s\n",
			r.RunColdS, r.RunColdS/r.FloorS, verdict(r.RunColdS <= 10))
	}
	r.coverageBench.print(tw)
	r.imageBench.print(tw)
	r.scaleBench.print(tw)
	r.labBench.print(tw)
	if r.SwitchMbps > 0 {
		fmt.Fprintf(tw, "network: TCP throughput, switch / multicast\t%.0f / %.0f Mbit/s (%.2fx)\t>= 0.9x\t%s\n",
			r.SwitchMbps, r.McastMbps, r.ThroughputRatio, verdict(r.ThroughputRatio >= 0.9))
		fmt.Fprintf(tw, "network: ping round trip, switch / multicast\t%.2f / %.2f ms\twithin 10%%\t%s\n",
			r.SwitchRTTMS, r.McastRTTMS, verdict(r.SwitchRTTMS <= 1.1*r.McastRTTMS))
	}
	printOutputBench(tw, r)
	tw.Flush()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// runGuestListen is the benchmark's port opener, run inside the guest: after
// a delay it listens on 127.0.0.1:PORT, prints the guest's clock (Unix ns)
// at that moment and accepts connections until the lifetime ends.
func runGuestListen(ctx context.Context, e *env, args []string) int {
	if len(args) != 3 {
		e.errorf("usage: vmlab guest-listen PORT DELAY LIFETIME")
		return exitUsage
	}
	delay, err1 := time.ParseDuration(args[1])
	life, err2 := time.ParseDuration(args[2])
	if err := errors.Join(err1, err2); err != nil {
		e.errorf("guest-listen: %v", err)
		return exitUsage
	}
	time.Sleep(delay)
	l, err := net.Listen("tcp", "127.0.0.1:"+args[0])
	if err != nil {
		e.errorf("guest-listen: %v", err)
		return exitFail
	}
	fmt.Fprintln(e.stdout, time.Now().UnixNano())
	if f, ok := e.stdout.(*os.File); ok {
		f.Sync()
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	select {
	case <-time.After(life):
	case <-ctx.Done():
	}
	l.Close()
	return exitOK
}

// benchExample times `vmlab run` of the example file as a user runs it,
// machines restored from the cache's snapshots (a first, untimed run
// takes those missing), and with -snapshot off. A missing file skips it.
func (r *benchResult) benchExample(ctx context.Context, e *env, file string) error {
	if file == "" {
		return nil
	}
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run %s, restored and cold\n", file)
	if _, err := timeRun(ctx, file, "-snapshot", "on"); err != nil {
		return err
	}
	restored, err := timeRun(ctx, file, "-snapshot", "on")
	if err != nil {
		return err
	}
	cold, err := timeRun(ctx, file, "-snapshot", "off")
	if err != nil {
		return err
	}
	r.RunS, r.RunColdS = restored.Seconds(), cold.Seconds()
	return nil
}
