package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// rebootBench is the reboot section of `vmlab bench`: what a reboot costs
// a machine whose disk is kept (a state directory), against the floor (a
// bare boot of the kernel).
type rebootBench struct {
	// RebootS is the median time from Reboot to the first Succeed("true")
	// after it: the clean shutdown (services stopped, file systems
	// unmounted, the disk's root remounted read-only), QEMU's exit and
	// the boot on the kept disk, with the setup applied again.
	RebootS     float64 `json:"reboot_s"`
	RebootRatio float64 `json:"reboot_ratio"`
}

// benchReboot boots a machine on a disk in a temporary state directory and
// reboots it runs times; each time the file written before the reboot must
// be there after it.
func (r *rebootBench) benchReboot(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs int, floorS float64) error {
	dir, err := machine.MakeTempDir("vmlab-bench-")
	if err != nil {
		return err
	}
	defer machine.RemoveTempDir(dir)
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus},
		Boot: boot, Dir: filepath.Join(dir, "machine"), DiskImage: filepath.Join(dir, "bench.img")})
	if err != nil {
		return err
	}
	defer m.Close()
	var took []time.Duration
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: reboot with the disk kept, %d of %d\n", i+1, runs)
		mark := fmt.Sprintf("/root/reboot-%d", i)
		if _, err := m.Succeed(ctx, "touch "+mark); err != nil {
			return err
		}
		start := time.Now()
		if err := m.Reboot(ctx); err != nil {
			return err
		}
		if _, err := m.Succeed(ctx, "true"); err != nil {
			return err
		}
		took = append(took, time.Since(start))
		if _, err := m.Succeed(ctx, "test -e "+mark); err != nil {
			return fmt.Errorf("reboot %d: %s written before it is gone: %w", i+1, mark, err)
		}
	}
	r.RebootS = median(took).Seconds()
	if floorS > 0 {
		r.RebootRatio = r.RebootS / floorS
	}
	return nil
}

func (r *rebootBench) print(tw io.Writer) {
	if r.RebootS == 0 {
		return
	}
	fmt.Fprintf(tw, "reboot with the disk kept: Reboot to Succeed(\"true\")\t%.2f s (%.2fx floor)\t<= 1.5x\t%s\n",
		r.RebootS, r.RebootRatio, verdict(r.RebootRatio <= 1.5))
}
