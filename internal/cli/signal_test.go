package cli

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestDriverDeath checks that no QEMU outlives the driver: on SIGINT and
// SIGTERM vmlab stops its machines and removes their directories; on SIGKILL
// the kernel kills QEMU (parent-death signal).
func TestDriverDeath(t *testing.T) {
	bin := vmtest.Agent(t) // the static build is the whole vmlab
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command(bin, "exec", "echo started; sleep 600")
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "VMLAB_AGENT="+bin)
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "started\n" {
				t.Fatalf("got %q, %v; want the command's first line", line, err)
			}
			qemu := childPids(cmd.Process.Pid)
			if len(qemu) != 1 {
				t.Fatalf("got qemu pids %v, want one", qemu)
			}
			cmd.Process.Signal(sig)
			err = cmd.Wait()
			if err == nil {
				t.Errorf("vmlab exited 0 after %v", sig)
			}
			if !gone(qemu[0], 10*time.Second) {
				syscall.Kill(qemu[0], syscall.SIGKILL)
				t.Fatalf("qemu (pid %d) outlived the driver killed by %v", qemu[0], sig)
			}
			if sig == syscall.SIGKILL {
				// The next run removes what a killed driver left.
				next := exec.Command(bin, "exec", "true")
				next.Env = cmd.Env
				if out, err := next.CombinedOutput(); err != nil {
					t.Fatalf("next run: %v\n%s", err, out)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "vmlab-*")); len(left) > 0 {
				t.Errorf("left behind after %v: %v", sig, left)
			}
		})
	}
}

// childPids returns the pids whose parent is pid.
func childPids(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at ')'.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			p, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			pids = append(pids, p)
		}
	}
	return pids
}

// gone waits until pid has exited, on a pidfd: it becomes readable when the
// process exits.
func gone(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // no such process
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(timeout.Milliseconds()))
	return err == nil && n == 1
}

// TestRunInterrupted: Ctrl-C during `vmlab run` stops the machines, writes
// the reports so far and exits 130; the test waiting behind the hanging
// one (-j 1) never starts and is reported as skipped.
func TestRunInterrupted(t *testing.T) {
	bin := vmtest.Agent(t)
	out := t.TempDir()
	cmd, r := startHanging(t, append(os.Environ(), "VMLAB_AGENT="+bin), bin, "-j", "1", "-out", out, "testdata/pass.star")
	qemu := childPids(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, r)
	err := cmd.Wait()
	if exitErr := (*exec.ExitError)(nil); !errors.As(err, &exitErr) || exitErr.ExitCode() != 130 {
		t.Errorf("got %v after SIGINT, want exit 130", err)
	}
	for _, pid := range qemu {
		if !gone(pid, 10*time.Second) {
			t.Errorf("qemu %d outlived the interrupted run", pid)
		}
	}
	for _, f := range []string{"events.jsonl", "junit.xml", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("after the interrupt: %v", err)
		}
	}
	junit, _ := os.ReadFile(filepath.Join(out, "junit.xml"))
	skipped := `<testcase name="test_hostname" classname="pass" time="0.000">
      <skipped message="not started: interrupted by Ctrl-C (SIGINT)"></skipped>`
	if !strings.Contains(string(junit), skipped) {
		t.Errorf("junit.xml lacks the skipped test:\n%s", junit)
	}
	if _, err := os.Stat(filepath.Join(out, "pass.test_hostname")); err == nil {
		t.Errorf("the skipped test has an output directory: it started")
	}
}

// startHanging starts `bin run -v testdata/hang.star ARGS` with env (flags
// may follow the file) and returns once its test is inside its long
// command (the console line "started"), with the rest of its output to
// read from r. The process is killed when the test ends.
func startHanging(t *testing.T, env []string, bin string, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run", "-v", "testdata/hang.star"}, args...)...)
	cmd.Env = env
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("vmlab run ended before the test started: %v", err)
		}
		if strings.Contains(line, "vm: started") {
			return cmd, r
		}
	}
}
