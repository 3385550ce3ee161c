package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// labBench is the lab-scale section of `vmlab bench`: a 16-machine lab on
// one VLAN, what a test of that size costs in wall time and host memory.
// The lab is measured booted cold, the baseline, and then as `vmlab run`
// starts machines by default: restored from one snapshot of their shape.
type labBench struct {
	// Lab16S is the 16-machine lab's wall time from start_all to the last
	// ping's answer (each machine pings its neighbour in a ring), as
	// `vmlab run` would start it: restored from a snapshot, unless
	// snapshots are off (-snapshot off, -restore=false), then cold.
	Lab16S float64 `json:"lab_16_s,omitempty"`
	// Lab16MiB is host memory per machine of that lab: the QEMU
	// processes' PSS (from /proc/PID/smaps_rollup) at the end, summed,
	// divided by 16.
	Lab16MiB float64 `json:"lab_16_mib,omitempty"`
	// Lab16ColdS and Lab16ColdMiB are the same of the lab booted cold.
	Lab16ColdS   float64 `json:"lab_16_cold_s,omitempty"`
	Lab16ColdMiB float64 `json:"lab_16_cold_mib,omitempty"`
	// Lab16RestoredS and Lab16RestoredMiB are the same of a lab of 16
	// machines restored from one snapshot of their shape (taken before
	// the start, in a temporary directory; over 9p): Lab16S and Lab16MiB
	// when snapshots are on.
	Lab16RestoredS   float64 `json:"lab_16_restored_s,omitempty"`
	Lab16RestoredMiB float64 `json:"lab_16_restored_mib,omitempty"`
}

// labBenchMachines is the section's lab size.
const labBenchMachines = 16

// labBenchTarget is the target for Lab16MiB.
const labBenchTarget = 100

// labRun is one measured lab of N machines on VLAN 1 (`vmlab bench
// -lab-only N` prints it whole; the section keeps two of its figures).
type labRun struct {
	Machines  int `json:"lab_machines"`
	MemoryMiB int `json:"lab_memory_mib"`
	// BootS is start_all's wall time: every machine answered a command.
	BootS float64 `json:"lab_boot_s"`
	// S is start_all to the last ping's answer, BootS included.
	S float64 `json:"lab_s"`
	// QEMUMiB is the QEMU processes' PSS summed, after the pings;
	// DaemonMiB the same of the virtiofsd processes serving them (0 on
	// 9p). PSS shares a page among the processes mapping it: the sum is
	// what the lab costs the host, not N times one process's RSS.
	QEMUMiB   float64 `json:"lab_qemu_pss_mib"`
	DaemonMiB float64 `json:"lab_virtiofsd_pss_mib"`
	// ShutdownS is closing the lab: every machine stopped.
	ShutdownS float64 `json:"lab_shutdown_s"`
	// Restored says the machines were restored from a snapshot of their
	// shape, taken before the start by a machine of the same shape
	// (SnapshotS); ColdBoots counts those that booted cold instead (a
	// note said why).
	Restored  bool    `json:"lab_restored"`
	SnapshotS float64 `json:"lab_snapshot_s,omitempty"`
	ColdBoots int     `json:"lab_cold_boots"`
}

// perMachine is the QEMU PSS per machine in MiB.
func (r labRun) perMachine() float64 { return r.QEMUMiB / float64(r.Machines) }

// benchLab runs the section (skip: nothing measured): a lab booted
// cold, then, with restored (snapshots on, as vmlab run would restore the
// lab's machines), a lab restored from a snapshot, whose figures are then
// the section's.
func (l *labBench) benchLab(ctx context.Context, e *env, bf bootFlags, skip, restored bool) error {
	if skip {
		return nil
	}
	cold := bf.opts
	cold.Snapshot = "off"
	boot, err := machine.PrepareBoot(cold)
	if err != nil {
		return err
	}
	r, err := measureLab(ctx, e, boot, labBenchMachines, bf.memory, bf.cpus, false)
	if err != nil {
		return err
	}
	l.Lab16ColdS, l.Lab16ColdMiB = r.S, r.perMachine()
	l.Lab16S, l.Lab16MiB = l.Lab16ColdS, l.Lab16ColdMiB
	if !restored {
		return nil
	}
	if r, err = measureRestoredLab(ctx, e, bf, labBenchMachines); err != nil {
		return fmt.Errorf("restored from a snapshot: %w", err)
	}
	if r.ColdBoots > 0 {
		return fmt.Errorf("restored from a snapshot: %d of %d machines booted cold (the notes above say why)", r.ColdBoots, r.Machines)
	}
	l.Lab16RestoredS, l.Lab16RestoredMiB = r.S, r.perMachine()
	l.Lab16S, l.Lab16MiB = l.Lab16RestoredS, l.Lab16RestoredMiB
	return nil
}

// snapshotBoot prepares a boot whose machines are restored from
// snapshots kept in a temporary directory, which cleanup removes: the
// bench leaves nothing in the user's cache. Its files come over 9p
// (virtiofs cannot be migrated).
func snapshotBoot(bf bootFlags) (boot *machine.Boot, cleanup func(), err error) {
	snaps, err := machine.MakeTempDir("vmlab-bench-snapshots-")
	if err != nil {
		return nil, nil, err
	}
	opts := bf.opts
	opts.Snapshot, opts.FS, opts.SnapshotDir = "on", "9p", snaps
	if boot, err = machine.PrepareBoot(opts); err != nil {
		machine.RemoveTempDir(snaps)
		return nil, nil, err
	}
	return boot, func() { machine.RemoveTempDir(snaps) }, nil
}

// measureRestoredLab is measureLab of n machines restored from one
// snapshot in a temporary directory.
func measureRestoredLab(ctx context.Context, e *env, bf bootFlags, n int) (labRun, error) {
	boot, cleanup, err := snapshotBoot(bf)
	if err != nil {
		return labRun{}, err
	}
	defer cleanup()
	return measureLab(ctx, e, boot, n, bf.memory, bf.cpus, true)
}

func (l *labBench) print(tw io.Writer) {
	if l.Lab16S == 0 {
		return
	}
	how, coldS, coldMiB := "booted cold", "", ""
	if l.Lab16RestoredS != 0 {
		how = "restored as vmlab run starts them"
		coldS, coldMiB = fmt.Sprintf(" (cold %.2f s)", l.Lab16ColdS), fmt.Sprintf(" (cold %.0f MiB)", l.Lab16ColdMiB)
	}
	fmt.Fprintf(tw, "lab of %d machines, %s: start_all to the last ping in a ring\t%.2f s%s\t\t\n", labBenchMachines, how, l.Lab16S, coldS)
	fmt.Fprintf(tw, "lab of %d machines, %s: host memory per machine (QEMU PSS)\t%.0f MiB%s\t<= %d MiB\t%s\n",
		labBenchMachines, how, l.Lab16MiB, coldMiB, labBenchTarget, verdict(l.Lab16MiB <= labBenchTarget))
}

// measureLab boots n machines of memMiB each on VLAN 1, has each ping its
// neighbour in a ring, reads the QEMU processes' PSS and closes the lab.
// The machines start at once, as start_all does. With restored, boot
// restores machines from snapshots: a lab of one machine of the same
// shape takes the snapshot first, untimed, and the machines that boot
// cold are counted.
func measureLab(ctx context.Context, e *env, boot *machine.Boot, n, memMiB, cpus int, restored bool) (labRun, error) {
	r := labRun{Machines: n, MemoryMiB: memMiB, Restored: restored}
	dir, err := machine.MakeTempDir("vmlab-bench-lab-")
	if err != nil {
		return r, err
	}
	defer machine.RemoveTempDir(dir)
	cfgs := make([]machine.Config, n)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("m%03d", i+1)
		cfgs[i] = machine.Config{Machine: spec.Machine{Name: names[i], MemoryMiB: memMiB, CPUs: cpus},
			BootTimeout: labBootTimeout(n)}
	}
	// The machines' notes of a snapshot (a cold boot and why) are the
	// only ones shown: the bench's own lines say the rest.
	var mu sync.Mutex
	cold := 0
	logf := func(format string, args ...any) {
		if s := fmt.Sprintf(format, args...); strings.Contains(s, "snapshot") {
			fmt.Fprintf(e.stderr, "vmlab: bench: %s\n", s)
			if strings.Contains(s, "cold boot") {
				mu.Lock()
				cold++
				mu.Unlock()
			}
		}
	}
	if restored {
		fmt.Fprintf(e.stderr, "vmlab: bench: snapshot of the lab machines' shape\n")
		start := time.Now()
		if err := snapshotLab(ctx, boot, filepath.Join(dir, "snapshot"), cfgs[0], logf); err != nil {
			return r, err
		}
		r.SnapshotS = time.Since(start).Seconds()
		cold = 0
	}
	l, err := lab.New(boot, filepath.Join(dir, "lab"), cfgs, logf)
	if err != nil {
		return r, err
	}
	defer l.Close()
	what := "booted cold"
	if restored {
		what = "restored from the snapshot"
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: a lab of %d machines of %d MiB, %s: start_all\n", n, memMiB, what)
	start := time.Now()
	if err := eachMachine(l, names, func(i int, m *machine.Machine) error {
		_, err := m.Succeed(ctx, "true")
		return err
	}); err != nil {
		return r, err
	}
	r.BootS = time.Since(start).Seconds()
	mu.Lock()
	r.ColdBoots = cold
	mu.Unlock()
	fmt.Fprintf(e.stderr, "vmlab: bench: lab: every machine pings its neighbour\n")
	if err := eachMachine(l, names, func(i int, m *machine.Machine) error {
		_, err := m.Succeed(ctx, "ping -c 1 -W 30 "+names[(i+1)%n])
		return err
	}); err != nil {
		return r, err
	}
	r.S = time.Since(start).Seconds()
	var pids []int
	for _, name := range names {
		pids = append(pids, l.Machine(name).QEMUPid())
	}
	if r.QEMUMiB, err = sumPSS(pids); err != nil {
		return r, err
	}
	if r.DaemonMiB, err = sumPSS(childrenNamed(os.Getpid(), "virtiofsd")); err != nil {
		return r, err
	}
	start = time.Now()
	if err := l.Close(); err != nil {
		return r, fmt.Errorf("close the lab: %w", err)
	}
	r.ShutdownS = time.Since(start).Seconds()
	return r, nil
}

// snapshotLab boots a lab of one machine of cfg's shape, on the same
// VLAN, which takes the snapshot of that shape, and closes it.
func snapshotLab(ctx context.Context, boot *machine.Boot, dir string, cfg machine.Config, logf func(string, ...any)) error {
	l, err := lab.New(boot, dir, []machine.Config{cfg}, logf)
	if err != nil {
		return err
	}
	defer l.Close()
	if _, err := l.Machine(cfg.Name).Succeed(ctx, "true"); err != nil {
		return fmt.Errorf("take the snapshot: machine %s: %w", cfg.Name, err)
	}
	return l.Close()
}

// labBootTimeout bounds each machine's boot in a lab of n booting at
// once: the default (60 s under TCG) is for one machine, and n machines
// share the host's cores: 3 machines took 15 s to answer on 2 loaded cores,
// 16 did not all answer within 80 s with other labs running; 15 s a
// machine is a bound, not a wait.
func labBootTimeout(n int) time.Duration {
	return time.Duration(max(n, 4)) * 15 * time.Second
}

// eachMachine runs do on every machine at once and returns the first
// error, naming the machine.
func eachMachine(l *lab.Lab, names []string, do func(int, *machine.Machine) error) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			if err := do(i, l.Machine(name)); err != nil {
				errs[i] = fmt.Errorf("machine %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sumPSS sums the processes' proportional set sizes in MiB, from
// /proc/PID/smaps_rollup's "Pss:" line.
func sumPSS(pids []int) (float64, error) {
	var kb int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			return 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
		}
		v, err := parsePSS(b)
		if err != nil {
			return 0, fmt.Errorf("read the memory of process %d: %w", pid, err)
		}
		kb += v
	}
	return float64(kb) / 1024, nil
}

// parsePSS returns the "Pss:" figure of a smaps_rollup, in kB.
func parsePSS(smaps []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "Pss:" && f[2] == "kB" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no Pss line in smaps_rollup")
}

// childrenNamed lists the processes whose parent is ppid and whose command
// name is comm.
func childrenNamed(ppid int, comm string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		rest := strings.Fields(s[end+1:])
		if s[open+1:end] == comm && len(rest) > 1 && rest[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runLabOnly is `vmlab bench -lab-only N`: the lab of N machines alone,
// printed as a table or JSON (docs/limits.md has the 100-machine run).
// When restored (the default; -snapshot off boots them cold) the machines
// come from a snapshot taken in a temporary directory.
func runLabOnly(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, n int, restored, asJSON bool) int {
	var r labRun
	var err error
	if restored {
		r, err = measureRestoredLab(ctx, e, bf, n)
	} else {
		r, err = measureLab(ctx, e, boot, n, bf.memory, bf.cpus, false)
	}
	if err != nil {
		e.errorf("bench: lab of %d machines: %v", n, err)
		return exitFail
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return exitOK
	}
	r.print(e.stdout)
	return exitOK
}

// snapshotWanted says whether the boot flags (or $VMLAB_SNAPSHOT, else
// the default) want machines restored from snapshots; PrepareBoot checks
// the value.
func snapshotWanted(bf bootFlags) bool {
	return cmp.Or(bf.opts.Snapshot, os.Getenv("VMLAB_SNAPSHOT"), "on") == "on"
}

func (r labRun) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lab of %d machines of %d MiB on one VLAN\t\t\n", r.Machines, r.MemoryMiB)
	if r.Restored {
		fmt.Fprintf(tw, "restored from one snapshot (over 9p), taken first in\t%.2f s\t\n", r.SnapshotS)
		fmt.Fprintf(tw, "machines that booted cold instead\t%d\t\n", r.ColdBoots)
	}
	fmt.Fprintf(tw, "start_all, every machine answering\t%.2f s\t\n", r.BootS)
	fmt.Fprintf(tw, "start_all to the last ping in a ring\t%.2f s\t\n", r.S)
	fmt.Fprintf(tw, "QEMU PSS, total / per machine\t%.0f MiB / %.0f MiB\t\n", r.QEMUMiB, r.perMachine())
	fmt.Fprintf(tw, "virtiofsd PSS, total / per machine\t%.0f MiB / %.1f MiB\t\n", r.DaemonMiB, r.DaemonMiB/float64(r.Machines))
	fmt.Fprintf(tw, "shutdown, every machine stopped\t%.2f s\t\n", r.ShutdownS)
	tw.Flush()
}
