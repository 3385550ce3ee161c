package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/control"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// upLab is a `vmlab up` running as a subprocess, and what it printed.
type upLab struct {
	cmd    *exec.Cmd
	lines  chan string // stdout and stderr, line by line
	exited chan error
}

// vmlabCmd runs the vmlab binary with the test's runtime directory.
func vmlabCmd(t *testing.T, bin, runtime string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime)
	return cmd
}

// startUp starts `vmlab up testdata/up.star` and waits until it says the
// lab is up. want, when not "", must be among its lines before that.
func startUp(t *testing.T, bin, runtime, want string, flags ...string) *upLab {
	t.Helper()
	cmd := vmlabCmd(t, bin, runtime, append(append([]string{"up"}, flags...), "testdata/up.star")...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upLab{cmd: cmd, lines: make(chan string, 100), exited: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		w.Close()
		u.exited <- err
	}()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("vmlab up: %s", sc.Text())
			u.lines <- sc.Text()
		}
		close(u.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	seen := false
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case l, ok := <-u.lines:
			if !ok {
				t.Fatalf("vmlab up exited before the lab was up: %v", <-u.exited)
			}
			seen = seen || want == "" || strings.Contains(l, want)
			if strings.HasPrefix(l, "lab up is up") {
				if !seen {
					t.Errorf("vmlab up never said %q", want)
				}
				return u
			}
		case <-deadline:
			t.Fatal("vmlab up: the lab was not up after 3 minutes")
		}
	}
}

// TestUpVM boots one lab with `vmlab up` and uses it from other processes
// as a user would: status, console, a second up of the same file, down;
// then kills a lab with SIGKILL and checks the next one starts over its
// remains, and stops a third with SIGINT. Three boots in all.
func TestUpVM(t *testing.T) {
	bin := vmtest.Agent(t)
	runtime, err := os.MkdirTemp("", "vup")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(runtime)
	vmlab := func(args ...string) (code int, stdout, stderr string) {
		cmd := vmlabCmd(t, bin, runtime, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), o.String(), e.String()
		} else if err != nil {
			t.Fatalf("run vmlab %v: %v", args, err)
		}
		return 0, o.String(), e.String()
	}

	lab := startUp(t, bin, runtime, "server: up in")

	t.Run("status", func(t *testing.T) {
		code, out, errs := vmlab("status")
		if code != 0 || !strings.Contains(out, "lab up: ") || !regexpMatch(`server\s+up\s+eth1 192\.168\.1\.1/24`, out) {
			t.Errorf("got exit %d, stdout %q, stderr %q; want lab up with server up on 192.168.1.1", code, out, errs)
		}
		code, out, _ = vmlab("status", "-json")
		var labs []control.LabStatus
		if err := json.Unmarshal([]byte(out), &labs); err != nil || code != 0 {
			t.Fatalf("status -json: exit %d, %v: %s", code, err, out)
		}
		if len(labs) != 1 || labs[0].Pid != lab.cmd.Process.Pid || labs[0].Machines[0].State != "up" {
			t.Errorf("status -json: got %+v, want one lab served by pid %d with server up", labs, lab.cmd.Process.Pid)
		}
	})

	t.Run("console", func(t *testing.T) {
		sc, err := ptytest.Start(vmlabCmd(t, bin, runtime, "console", "server"), pty.Size{Rows: 24, Cols: 80})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if _, err := sc.Expect(`Ctrl-\] then q leaves`, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		// The service in up.star answers each line on ttyS0.
		sc.Type("hello console\r")
		if _, err := sc.Expect("serial got: hello console", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		sc.Type("\x1dq")
		if _, err := sc.Expect("left the console of server", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := sc.Wait(); err != nil {
			t.Errorf("vmlab console after Ctrl-] q: %v, want exit 0", err)
		}
	})

	t.Run("shell pipes", func(t *testing.T) {
		cmd := vmlabCmd(t, bin, runtime, "shell", "server", "--", "sh", "-c", "tr a-z A-Z; echo oops >&2; exit 7")
		cmd.Stdin = strings.NewReader("hello from a pipe\n")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 7 || o.String() != "HELLO FROM A PIPE\n" || e.String() != "oops\n" {
			t.Errorf("got %v, stdout %q, stderr %q; want exit 7, the input in capitals, oops", err, o.String(), e.String())
		}
	})

	t.Run("shell terminal", func(t *testing.T) {
		sc, err := ptytest.Start(vmlabCmd(t, bin, runtime, "shell", "server"), pty.Size{Rows: 24, Cols: 80})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		step := func(keys, want string) {
			t.Helper()
			sc.Type(keys)
			if _, err := sc.Expect(want, 30*time.Second); err != nil {
				t.Fatalf("typed %q: %v\nscreen:\n%s", keys, err, sc.Text())
			}
		}
		step("echo marker-$((6*7))\r", "marker-42")
		step("stty size\r", "24 80")
		// The new size travels apart from the keys (SIGWINCH here, a
		// resize message, the guest's ioctl): ask until it has arrived.
		sc.Resize(pty.Size{Rows: 30, Cols: 100})
		for i := 0; ; i++ {
			sc.Type("stty size\r")
			got, err := sc.Expect(`(24 80|30 100)\r?\n`, 30*time.Second)
			if err != nil {
				t.Fatalf("stty size after a resize: %v", err)
			}
			if strings.Contains(got, "30 100") {
				break
			}
			if i == 20 {
				t.Fatalf("the guest's terminal is still 24x80 after a resize to 30x100 and %d tries", i)
			}
		}
		// Ctrl-C reaches the guest's foreground job, not vmlab shell. The
		// job says when it runs: a Ctrl-C sent on the echo of the typed
		// line could land between bash's fork and the job's exec, where
		// the child still has bash's SIGINT handler and the interrupt is
		// lost (seen once in CI: sleep 600 ran on).
		step("sh -c 'echo sle\"\"eping; exec sleep 600'\r", "sleeping\r\n")
		step("\x03", "\\^C")
		step("echo after-$((1+1))\r", "after-2")
		sc.Type("exit\r")
		if err := sc.Wait(); err != nil {
			t.Errorf("vmlab shell after exit: %v, want exit 0\nscreen:\n%s", err, sc.Text())
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"up", "testdata/up.star"}, exitUsage, `lab "up" is already up (vmlab pid`},
			{[]string{"console", "nosuch"}, exitFail, `lab "up" has no machine "nosuch"; its machines: server`},
			{[]string{"shell", "nosuch", "--", "true"}, exitFail, `lab "up" has no machine "nosuch"; its machines: server`},
			{[]string{"status", "-lab", "other"}, exitFail, `lab "other" is not up; labs up: up`},
		} {
			code, _, errs := vmlab(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("vmlab %v: got exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
			}
		}
	})

	// SIGKILL: the lab cannot clean up. The next vmlab up takes the name
	// over and says what it removed.
	lab.cmd.Process.Signal(syscall.SIGKILL)
	<-lab.exited
	if _, err := os.Stat(filepath.Join(runtime, "vmlab", "up.sock")); err != nil {
		t.Fatalf("a SIGKILLed lab should leave its socket for this test to mean anything: %v", err)
	}
	lab = startUp(t, bin, runtime, `removed the stale socket of lab "up"`)

	t.Run("machine failed", func(t *testing.T) {
		// The guest panics under the shell: the shell fails, the lab stays.
		if code, _, errs := vmlab("shell", "server", "--", "sh", "-c", "echo c > /proc/sysrq-trigger"); code != exitFail || !strings.Contains(errs, "machine is down") {
			t.Errorf("a shell whose guest panics: exit %d, stderr %q; want 1 and the machine down", code, errs)
		}
		if code, out, _ := vmlab("status"); code != 0 || !regexpMatch(`server\s+failed`, out) || !strings.Contains(out, "kernel panic") {
			t.Errorf("status: exit %d, %q; want server failed by a kernel panic", code, out)
		}
		code, _, errs := vmlab("shell", "server", "--", "true")
		if code != exitFail || !strings.Contains(errs, `machine server of lab "up" is failed`) || !strings.Contains(errs, "kernel panic") {
			t.Errorf("a shell on the failed machine: exit %d, stderr %q; want its state and why", code, errs)
		}
	})

	t.Run("down", func(t *testing.T) {
		code, out, errs := vmlab("down")
		if code != 0 || !strings.Contains(out, "lab up is down") {
			t.Errorf("down: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		select {
		case err := <-lab.exited:
			if err != nil {
				t.Errorf("vmlab up after down: %v, want exit 0", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("vmlab up still runs a minute after down returned")
		}
		if code, _, errs := vmlab("status", "-lab", "up"); code != exitFail || !strings.Contains(errs, "no lab is up") && !strings.Contains(errs, "not up") {
			t.Errorf("status after down: exit %d, %q", code, errs)
		}
	})

	// Ctrl-C (SIGINT) stops a lab as down does, and leaves nothing behind.
	lab = startUp(t, bin, runtime, "")
	lab.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-lab.exited:
		if err != nil {
			t.Errorf("vmlab up after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("vmlab up still runs a minute after SIGINT")
	}
	if left, _ := filepath.Glob(filepath.Join(runtime, "vmlab", "*")); len(left) != 0 {
		t.Errorf("after SIGINT the lab left %v", left)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
