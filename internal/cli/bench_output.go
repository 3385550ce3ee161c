package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchOutputChild, set in a vmlab's environment, makes `vmlab bench ARGS`
// run `vmlab run ARGS` in that process instead, then print the process's
// own peak RSS as JSON: the driver whose memory benchOutput measures.
const benchOutputChild = "VMLAB_BENCH_OUTPUT_CHILD"

// outputFigures are the output section of `vmlab bench`.
type outputFigures struct {
	PeakMiB float64 // driver's peak RSS running a command that prints the bytes
	BaseMiB float64 // the same driver running a command that prints nothing
	Seconds float64 // how much longer the printing run took than the other
}

// childReport is what a child driver prints.
type childReport struct {
	MaxRSSKiB int64 `json:"maxrss_kib"`
	Exit      int   `json:"exit"`
}

// addOutput measures the output figures into r, unless mib is 0.
func (r *benchResult) addOutput(ctx context.Context, e *env, bf bootFlags, mib int) error {
	if mib <= 0 {
		return nil
	}
	o, err := benchOutput(ctx, e, bf, mib)
	if err != nil {
		return err
	}
	r.OutputMiB, r.OutputPeakMiB, r.OutputBaseMiB, r.OutputS = mib, o.PeakMiB, o.BaseMiB, o.Seconds
	return nil
}

// benchOutput measures the driver's peak RSS while a command prints mib
// MiB on its stdout, against a baseline: two fresh drivers (this binary,
// as child processes) each `vmlab run` a one-machine test, one whose
// command prints the bytes and one whose command prints nothing. Each
// child reads its own peak from getrusage(RUSAGE_SELF), which leaves out
// QEMU (a child of the driver, with the guest's memory in its RSS). The
// printing run must fail with the output limit's error and leave the whole
// output in its file, or the figure does not count.
func benchOutput(ctx context.Context, e *env, bf bootFlags, mib int) (outputFigures, error) {
	dir, err := os.MkdirTemp("", "vmlab-bench-output-")
	if err != nil {
		return outputFigures{}, err
	}
	defer os.RemoveAll(dir)
	size := int64(mib) << 20
	fmt.Fprintf(e.stderr, "vmlab: bench: driver memory, a command that prints nothing\n")
	base, baseTime, err := outputRun(ctx, bf, filepath.Join(dir, "base"), "true", exitOK)
	if err != nil {
		return outputFigures{}, fmt.Errorf("baseline: %w", err)
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: driver memory, a command that prints %d MiB\n", mib)
	peak, peakTime, err := outputRun(ctx, bf, filepath.Join(dir, "big"), fmt.Sprintf("head -c %d /dev/zero", size), exitFail)
	if err != nil {
		return outputFigures{}, fmt.Errorf("%d MiB of output: %w", mib, err)
	}
	if got, err := largestOutputFile(filepath.Join(dir, "big")); err != nil || got != size {
		return outputFigures{}, fmt.Errorf("%d MiB of output: the output file holds %d bytes (%v), want %d", mib, got, err, size)
	}
	return outputFigures{PeakMiB: float64(peak) / 1024, BaseMiB: float64(base) / 1024,
		Seconds: (peakTime - baseTime).Seconds()}, nil
}

// outputRun runs a child driver on a test that runs command once and
// returns the child's peak RSS in KiB and its wall time.
func outputRun(ctx context.Context, bf bootFlags, dir, command string, wantExit int) (int64, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	file := filepath.Join(dir, "output.star")
	test := fmt.Sprintf("m = machine()\n\ndef test():\n    m.execute(%q)\n", command)
	if err := os.WriteFile(file, []byte(test), 0o600); err != nil {
		return 0, 0, err
	}
	exe, err := driverBinary()
	if err != nil {
		return 0, 0, err
	}
	args := append([]string{"bench", "-j", "1", "-out", filepath.Join(dir, "out")}, bf.args()...)
	cmd := exec.CommandContext(ctx, exe, append(args, file)...)
	cmd.Env = append(os.Environ(), benchOutputChild+"=1")
	var stderr tailBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	var rep childReport
	if jerr := json.Unmarshal(out, &rep); err != nil || jerr != nil {
		return 0, 0, fmt.Errorf("child driver: %v %v\n%s", err, jerr, stderr.String())
	}
	if rep.Exit != wantExit {
		return 0, 0, fmt.Errorf("vmlab run: exit %d, want %d\n%s", rep.Exit, wantExit, stderr.String())
	}
	return rep.MaxRSSKiB, took, nil
}

// driverBinary is the vmlab to run as a child driver: this program, or,
// when this is a Go test binary (which runs tests, not commands), the
// vmlab the tests built for the guests ($VMLAB_AGENT).
func driverBinary() (string, error) {
	exe, err := os.Executable()
	if err == nil && strings.HasSuffix(exe, ".test") {
		if agent := os.Getenv("VMLAB_AGENT"); agent != "" {
			return agent, nil
		}
		err = fmt.Errorf("%s is a test binary and $VMLAB_AGENT names no vmlab", exe)
	}
	return exe, err
}

// args are the flags that give another vmlab command the same boot.
func (b *bootFlags) args() []string {
	args := []string{"-memory", strconv.Itoa(b.memory), "-cpus", strconv.Itoa(b.cpus)}
	for _, f := range []struct{ name, value string }{
		{"-kernel", b.opts.Kernel}, {"-modules", b.opts.Modules}, {"-qemu", b.opts.QEMU}, {"-accel", b.opts.Accel}, {"-snapshot", b.opts.Snapshot},
	} {
		if f.value != "" {
			args = append(args, f.name, f.value)
		}
	}
	return args
}

// largestOutputFile is the size of the largest command output file
// (output/command-N.stdout in a machine's directory) under dir.
func largestOutputFile(dir string) (int64, error) {
	var largest int64
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".stdout") || filepath.Base(filepath.Dir(path)) != "output" {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			largest, found = max(largest, fi.Size()), true
		}
		return err
	})
	if err == nil && !found {
		err = errors.New("no output file")
	}
	return largest, err
}

// benchRun runs `vmlab run ARGS` in this process for a figure, its report
// to out, with the result cache off (a figure is of a run, never of a
// test reported cached: the coverage example's run without -coverage once
// was, 0.15 s) and machines booted cold unless ARGS say -snapshot on (the
// first run of a shape would take its snapshot inside the figure).
func benchRun(ctx context.Context, out io.Writer, args ...string) int {
	return runRun(ctx, &env{stdout: out, stderr: out}, append([]string{"-cache=off", "-snapshot=off"}, args...))
}

// runOutputChild is the child driver: `vmlab run args` in this process,
// then its peak RSS and the run's exit code as JSON on stdout. The run's
// own report goes to stderr.
func runOutputChild(ctx context.Context, e *env, args []string) int {
	code := benchRun(ctx, e.stderr, args...)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		e.errorf("getrusage: %v", err)
		return exitFail
	}
	json.NewEncoder(e.stdout).Encode(childReport{MaxRSSKiB: ru.Maxrss, Exit: code})
	return exitOK
}

// tailBuffer keeps the last 64 KiB written to it: a child's report, for
// the error when it fails.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	const keep = 64 << 10
	t.b = append(t.b, p...)
	if len(t.b) > keep {
		t.b = append(t.b[:0:0], t.b[len(t.b)-keep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// printOutputBench is the output section's line of the table.
func printOutputBench(w io.Writer, r *benchResult) {
	if r.OutputPeakMiB == 0 {
		return
	}
	fmt.Fprintf(w, "driver peak RSS, a command printing %d MiB (baseline: prints nothing)\t%.0f MiB (%.0f MiB), +%.1f s\t<= 300 MiB\t%s\n",
		r.OutputMiB, r.OutputPeakMiB, r.OutputBaseMiB, r.OutputS, verdict(r.OutputPeakMiB <= 300))
}
