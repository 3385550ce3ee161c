package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// systemdBench is the systemd section of `vmlab bench`: what init =
// "systemd" costs against the floor, and the NFS example end to end.
type systemdBench struct {
	// SystemdBootS is the median time from Start of a machine with init =
	// "systemd" to WaitForUnit("multi-user.target") returning: the kernel,
	// the agent building the root, systemd, the agent's unit serving the
	// host, and systemd reaching multi-user.target. Before vmlab, systemd
	// over the host's root with every host unit enabled took 49 s of guest
	// uptime; the target is 2.5x the floor.
	SystemdBootS     float64 `json:"systemd_boot_s,omitempty"`
	SystemdBootRatio float64 `json:"systemd_boot_ratio,omitempty"`
	// NFSExampleS is `vmlab run` of the NFS example (examples/nfs.star),
	// end to end: three machines, one a systemd NFS server, a client's
	// shutdown and the server's crash and restart.
	NFSExampleS float64 `json:"nfs_example_s,omitempty"`
}

// systemdBootTarget is the target for SystemdBootRatio.
const systemdBootTarget = 2.5

// benchSystemd boots a systemd guest runs times and times each to
// multi-user.target. A root without systemd skips it, saying so.
func (s *systemdBench) benchSystemd(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs int, floorS float64) error {
	if _, err := os.Stat(spec.SystemdPath); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no systemd boot: the root has no %s\n", spec.SystemdPath)
		return nil
	}
	var took []time.Duration
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: systemd boot %d of %d\n", i+1, runs)
		d, err := timeSystemdBoot(ctx, boot, bf)
		if err != nil {
			return err
		}
		took = append(took, d)
	}
	s.SystemdBootS = median(took).Seconds()
	if floorS > 0 {
		s.SystemdBootRatio = s.SystemdBootS / floorS
	}
	return nil
}

// timeSystemdBoot returns the time from Start of a fresh systemd machine
// to multi-user.target active.
func timeSystemdBoot(ctx context.Context, boot *machine.Boot, bf bootFlags) (time.Duration, error) {
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus,
		Init: spec.InitSystemd}, Boot: boot})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		return 0, fmt.Errorf("boot systemd machine bench: %w", err)
	}
	if err := m.WaitForUnit(ctx, "multi-user.target", "", 0); err != nil {
		return 0, fmt.Errorf("wait for multi-user.target on systemd machine bench: %w", err)
	}
	return time.Since(start), nil
}

// benchNFSExample times `vmlab run FILE` of the NFS example, as
// benchmark (e) times the client/server one. A missing file, or a host
// without systemd, skips it, saying so.
func (s *systemdBench) benchNFSExample(ctx context.Context, e *env, file string) error {
	if file == "" {
		return nil
	}
	if _, err := os.Stat(file); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no NFS example: %v\n", err)
		return nil
	}
	if _, err := os.Stat(spec.SystemdPath); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: no NFS example: the root has no %s\n", spec.SystemdPath)
		return nil
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: vmlab run %s\n", file)
	start := time.Now()
	var out strings.Builder
	if code := benchRun(ctx, &out, file); code != exitOK {
		return fmt.Errorf("vmlab run %s: exit %d\n%s", file, code, out.String())
	}
	s.NFSExampleS = time.Since(start).Seconds()
	return nil
}

// nfsExampleTarget is the NFS example's wall time that keeps it in CI.
const nfsExampleTarget = 90

func (s *systemdBench) print(tw io.Writer) {
	if s.SystemdBootS > 0 {
		fmt.Fprintf(tw, "systemd guest: Start to wait_for_unit(\"multi-user.target\")\t%.2f s (%.2fx floor)\t<= %.1fx\t%s\n",
			s.SystemdBootS, s.SystemdBootRatio, systemdBootTarget, verdict(s.SystemdBootRatio <= systemdBootTarget))
	}
	if s.NFSExampleS > 0 {
		fmt.Fprintf(tw, "vmlab run examples/nfs.star, wall time\t%.2f s\t<= %d s\t%s\n",
			s.NFSExampleS, nfsExampleTarget, verdict(s.NFSExampleS <= nfsExampleTarget))
	}
}
