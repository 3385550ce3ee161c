package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// shellBench is the control socket's section of `vmlab bench`.
type shellBench struct {
	// ShellRTTMS is `vmlab shell MACHINE -- true` on a lab that is up,
	// run in-process (so without the process start): finding the lab,
	// connect, hello, the shell request, the command's exit; median of
	// shellRuns.
	ShellRTTMS float64 `json:"shell_rtt_ms"`
	// ShellDirectMS is the same command through Machine.Shell in the
	// lab's own process: the difference is the socket's share.
	ShellDirectMS float64 `json:"shell_direct_ms"`
}

// shellRuns is how many shells the figure is the median of.
const shellRuns = 50

// benchShell boots a one-machine lab, serves it on a control socket and
// times shells through it, and the same shells in-process.
func (s *shellBench) benchShell(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags) error {
	fmt.Fprintf(e.stderr, "vmlab: bench: %d shells through the control socket\n", shellRuns)
	dir, err := machine.MakeTempDir("vmlab-bench-")
	if err != nil {
		return err
	}
	defer machine.RemoveTempDir(dir)
	cfg := machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus, VLANs: []int{}}}
	l, err := lab.New(boot, dir, []machine.Config{cfg}, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Machine("bench").Start(ctx); err != nil {
		return err
	}
	name := fmt.Sprintf("vmlab-bench-%d", os.Getpid())
	srv, err := control.Listen(name, control.LabInfo{File: "vmlab bench"}, control.LabBackend(l), nil)
	if err != nil {
		return err
	}
	defer srv.Close()
	viaSocket := func() error {
		var out strings.Builder
		if code := runShell(ctx, &env{stdout: &out, stderr: &out}, []string{"-lab", name, "bench", "--", "true"}); code != exitOK {
			return fmt.Errorf("vmlab shell -lab %s bench -- true: exit %d: %s", name, code, out.String())
		}
		return nil
	}
	direct := func() error {
		return shellTrue(l.Machine("bench").Shell(ctx, machine.ShellOptions{Command: []string{"true"}, Stdout: io.Discard}))
	}
	var sock, dir2 []time.Duration
	for range shellRuns { // alternating, so a change in load hits both
		for _, run := range []struct {
			f  func() error
			to *[]time.Duration
		}{{viaSocket, &sock}, {direct, &dir2}} {
			start := time.Now()
			if err := run.f(); err != nil {
				return err
			}
			*run.to = append(*run.to, time.Since(start))
		}
	}
	s.ShellRTTMS, s.ShellDirectMS = ms(median(sock)), ms(median(dir2))
	return nil
}

// shellTrue checks that a shell ran true.
func shellTrue(res machine.ShellResult, err error) error {
	if err == nil && res.Status != 0 {
		err = fmt.Errorf("true exited %d", res.Status)
	}
	return err
}

func (s *shellBench) print(tw io.Writer) {
	fmt.Fprintf(tw, "vmlab shell MACHINE -- true, connect to exit (in-process Machine.Shell: %.2f ms)\t%.2f ms\t<= 2x in-process\t%s\n",
		s.ShellDirectMS, s.ShellRTTMS, verdict(s.ShellRTTMS <= 2*s.ShellDirectMS))
}
