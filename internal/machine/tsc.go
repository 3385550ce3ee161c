package machine

import (
	"runtime"
	"strconv"
	"sync"
	"time"
)

// The guest's TSC frequency under TCG. QEMU's emulated RDTSC returns the
// host's TSC (cpu_get_host_ticks), so the guest's TSC runs at the host's
// frequency. Left to itself, the guest kernel calibrates it against the
// emulated PIT and HPET, polling them in loops that a loaded host
// deschedules; a calibration several times too low makes the guest's clock
// run several times too fast for the rest of its life (the kernel's later
// refinement only accepts a value within 1% of the first; see "The guest's
// clock" in docs/architecture.md). vmlab measures
// the host's TSC against CLOCK_MONOTONIC once per process and gives the
// guest the figure (tsc_early_khz=), which also skips the guest's slow
// PIT/HPET calibration loop.

var (
	tscOnce sync.Once
	tscKHz  int64
)

// hostTSCkHz returns the host's TSC frequency in kHz, measured on first
// use (~20 ms), or 0 where there is no TSC or the figure is implausible.
func hostTSCkHz() int64 {
	tscOnce.Do(func() {
		if haveTSC {
			tscKHz = measureTSCkHz(20 * time.Millisecond)
		}
	})
	return tscKHz
}

// measureTSCkHz counts the TSC's cycles over at least span of the
// monotonic clock. Each end is the reading whose two monotonic readings
// around it are closest, so that a descheduled moment does not count.
func measureTSCkHz(span time.Duration) int64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sample := func() (time.Time, uint64) {
		var at time.Time
		var tsc uint64
		best := time.Duration(1<<63 - 1)
		for range 16 {
			t0 := time.Now()
			c := rdtsc()
			t1 := time.Now()
			if d := t1.Sub(t0); d < best {
				best, at, tsc = d, t0.Add(d/2), c
			}
		}
		return at, tsc
	}
	t0, c0 := sample()
	for time.Since(t0) < span {
		// The span is a measurement, not a wait for an event.
	}
	t1, c1 := sample()
	ns := t1.Sub(t0).Nanoseconds()
	if ns <= 0 || c1 <= c0 {
		return 0
	}
	khz := int64((c1 - c0) * 1e6 / uint64(ns))
	if khz < 100_000 || khz > 20_000_000 { // 100 MHz to 20 GHz
		return 0
	}
	return khz
}

// tscArgs returns the kernel arguments that give a TCG guest the host's
// TSC frequency; none under KVM, whose kvm-clock needs no calibration.
func tscArgs(accel string) []string {
	if accel == "kvm" {
		return nil
	}
	khz := hostTSCkHz()
	if khz == 0 {
		return nil
	}
	return []string{"tsc_early_khz=" + strconv.FormatInt(khz, 10)}
}
