package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// restoreBench is the snapshot section of `vmlab bench` (docs/snapshots.md):
// machines restored from a cached snapshot of their shape, against the
// floor and against cold boots.
type restoreBench struct {
	// RestoreS is the median time from Start to the first
	// Succeed("true") of a machine restored from a cached snapshot.
	RestoreS     float64 `json:"restore_s"`
	RestoreRatio float64 `json:"restore_ratio"`
	// RestorePSSMiB and ColdPSSMiB are the mean proportional set size of
	// QEMU (smaps_rollup's Pss) over 4 machines running at once, restored
	// and booted cold: a restored machine's memory pages it has not
	// written are the snapshot file's, one copy for all of them.
	RestorePSSMiB float64 `json:"restore_pss_mib"`
	ColdPSSMiB    float64 `json:"cold_pss_mib"`
}

// benchRestore measures restores on a boot of its own that has snapshots
// on and 9p (virtiofs cannot be migrated): the first machine takes the
// snapshot, in a temporary directory removed at the end, so that the
// bench leaves no snapshot in the user's cache.
func (r *restoreBench) benchRestore(ctx context.Context, e *env, bf bootFlags, runs int, floorS float64) error {
	boot, cleanup, err := snapshotBoot(bf)
	if err != nil {
		return err
	}
	defer cleanup()
	cold := bf.opts
	cold.Snapshot, cold.FS = "off", "9p"
	coldBoot, err := machine.PrepareBoot(cold)
	if err != nil {
		return err
	}
	var notes []string
	start := func(b *machine.Boot, name string) (*machine.Machine, time.Duration, error) {
		m, err := machine.New(machine.Config{Machine: spec.Machine{Name: name, MemoryMiB: bf.memory, CPUs: bf.cpus}, Boot: b,
			Logf: func(f string, a ...any) {
				if s := fmt.Sprintf(f, a...); strings.Contains(s, "snapshot") {
					notes = append(notes, s)
				}
			}})
		if err != nil {
			return nil, 0, err
		}
		t0 := time.Now()
		if err := m.Start(ctx); err != nil {
			m.Close()
			return nil, 0, err
		}
		if _, err := m.Succeed(ctx, "true"); err != nil {
			m.Close()
			return nil, 0, err
		}
		return m, time.Since(t0), nil
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: snapshot of the machine's shape\n")
	m, _, err := start(boot, "restore0")
	if err != nil {
		return err
	}
	m.Close()
	var took []time.Duration
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: restore from the snapshot, %d of %d\n", i+1, runs)
		notes = nil
		m, d, err := start(boot, fmt.Sprintf("restore%d", i+1))
		if err != nil {
			return err
		}
		m.Close()
		for _, n := range notes {
			if strings.Contains(n, "cold boot") {
				return fmt.Errorf("restore %d booted cold: %s", i+1, n)
			}
		}
		took = append(took, d)
	}
	r.RestoreS = median(took).Seconds()
	if floorS > 0 {
		r.RestoreRatio = r.RestoreS / floorS
	}
	for _, c := range []struct {
		b    *machine.Boot
		name string
		out  *float64
	}{{boot, "restored", &r.RestorePSSMiB}, {coldBoot, "cold", &r.ColdPSSMiB}} {
		fmt.Fprintf(e.stderr, "vmlab: bench: memory of 4 %s machines\n", c.name)
		pss, err := groupPSS(c.b, start, c.name)
		if err != nil {
			return err
		}
		*c.out = pss
	}
	return nil
}

// groupPSS starts 4 machines and returns their QEMUs' mean PSS in MiB.
func groupPSS(b *machine.Boot, start func(*machine.Boot, string) (*machine.Machine, time.Duration, error), kind string) (float64, error) {
	var ms []*machine.Machine
	defer func() {
		for _, m := range ms {
			m.Close()
		}
	}()
	for i := range 4 {
		m, _, err := start(b, fmt.Sprintf("%s%d", kind, i))
		if err != nil {
			return 0, err
		}
		ms = append(ms, m)
	}
	var sum float64
	for _, m := range ms {
		kib, err := pssKiB(m.QEMUPid())
		if err != nil {
			return 0, err
		}
		sum += float64(kib) / 1024
	}
	return sum / float64(len(ms)), nil
}

// pssKiB reads a process's proportional set size from smaps_rollup.
func pssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("read qemu's memory: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("read qemu's memory: no Pss in /proc/%d/smaps_rollup", pid)
}

func (r *restoreBench) print(tw io.Writer) {
	if r.RestoreS == 0 {
		return
	}
	fmt.Fprintf(tw, "restored from a snapshot: Start to Succeed(\"true\")\t%.2f s (%.2fx floor)\t<= 0.5 s, <= 0.25x\t%s\n",
		r.RestoreS, r.RestoreRatio, verdict(r.RestoreS <= 0.5 && r.RestoreRatio <= 0.25))
	fmt.Fprintf(tw, "QEMU PSS per machine, 4 restored / 4 cold\t%.0f / %.0f MiB\t<= 100 MiB\t%s\n",
		r.RestorePSSMiB, r.ColdPSSMiB, verdict(r.RestorePSSMiB <= 100))
}
