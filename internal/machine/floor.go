package machine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/initramfs"
	"github.com/vmlab/vmlab/internal/qemu"
)

// RunFloor boots the kernel with the same QEMU flags as a machine but with a
// trivial init that powers off at once, and returns the wall time from
// QEMU's start to its exit: the floor no machine can beat.
// memoryMiB and cpus are the machine's (zero: the defaults).
func (b *Boot) RunFloor(ctx context.Context, accel qemu.Accel, cacheDir string, memoryMiB, cpus int) (time.Duration, error) {
	floor, err := initramfs.BuildFloor(cacheDir)
	if err != nil {
		return 0, err
	}
	dir, err := makeTempDir("vmlab-floor-")
	if err != nil {
		return 0, fmt.Errorf("run floor boot: %w", err)
	}
	defer RemoveTempDir(dir)
	cfg := qemu.Config{
		Binary: b.QEMU, Accel: accel, Kernel: b.Kernel.Vmlinux, Initrd: floor,
		MemoryMiB: memoryMiB, CPUs: cpus,
		Append: strings.Join(append(slices.Clone(kernelArgs), tscArgs(accel.Name)...), " "), Dir: dir, Firmware: b.Firmware,
	}
	start := time.Now()
	proc, err := qemu.Start(ctx, cfg, io.Discard)
	if err != nil {
		return 0, err
	}
	defer proc.Kill()
	select {
	case <-proc.Done():
	case <-ctx.Done():
		return 0, fmt.Errorf("run floor boot: %w", ctx.Err())
	}
	elapsed := time.Since(start)
	if !proc.ExitedCleanly() {
		return 0, fmt.Errorf("run floor boot: %w", proc.Err())
	}
	return elapsed, nil
}

// kvmProbeTimeout bounds the test boot that decides whether KVM works. A
// working KVM powers the floor off in well under a second.
const kvmProbeTimeout = 10 * time.Second

// chooseAccel returns KVM when /dev/kvm is usable and a test boot under it
// works, TCG otherwise. /dev/kvm can open and still fail: nested inside
// another VM, QEMU aborted setting MSR 0x10a with -cpu host, or hung in the
// kernel's early boot. The verdict is cached per host kernel, CPU and QEMU,
// so the test boot runs once.
func (b *Boot) chooseAccel(cacheDir string) qemu.Accel {
	a := qemu.ProbeAccel()
	if a.Name != "kvm" {
		return a
	}
	path := filepath.Join(cacheDir, "accel-"+hostKey(b.QEMU)+".json")
	if data, err := os.ReadFile(path); err == nil {
		var cached qemu.Accel
		if json.Unmarshal(data, &cached) == nil && cached.Name != "" {
			return cached
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvmProbeTimeout)
	defer cancel()
	if _, err := b.RunFloor(ctx, a, cacheDir, 0, 0); err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		a = qemu.Accel{Name: "tcg", Why: "/dev/kvm is present but a test boot under it failed (" + first + "); software emulation is ~10x slower"}
	} else {
		a.Why = "/dev/kvm works"
	}
	if data, err := json.Marshal(a); err == nil {
		os.WriteFile(path, data, 0o600)
	}
	return a
}

// hostKey identifies what the KVM verdict depends on.
func hostKey(qemuPath string) string {
	h := sha256.New()
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cpu, _ := os.ReadFile("/proc/cpuinfo")
	first, _, _ := strings.Cut(string(cpu), "\nflags")
	h.Write(release)
	h.Write([]byte(first))
	if info, err := os.Stat(qemuPath); err == nil {
		fmt.Fprint(h, qemuPath, info.Size(), info.ModTime().UnixNano())
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}
