package agent

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestMain builds the static agent for the tests that boot a machine, and
// only for them: -short runs none.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	vmtest.Main(m)
}

// TestCommandSemanticsInVM runs commandSemantics through the whole path:
// the host's client, the channel, the agent as the guest's PID 1 and the
// guest's bash, as a test's commands run: through the fork server (on by
// default) for every case it may take, and the exec path for the others.
// Then forkTwins run both ways (Dir("/root") keeps a command on the exec
// path and changes nothing else) and must agree.
func TestCommandSemanticsInVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "semantics"}, BootTimeout: 5 * time.Minute})
	runSemanticsInVM(t, m, true)
	// Those cases ran in the initramfs's copy of bash.
	if out, err := m.Succeed(t.Context(), vmtest.ForkServerBash); err != nil || out != "copy\n" {
		t.Errorf("the fork server runs %q (%v), want the initramfs's copy", out, err)
	}
	// The server is no bash for pidof and pgrep.
	out, err := m.Succeed(t.Context(), `p=$(pgrep -x vmlab-forksrv); for q in $(pidof bash) $(pgrep -x bash); do [ "$q" != "$p" ] || echo "found $q"; done; echo "server $p"`)
	if err != nil || !strings.HasPrefix(out, "server ") || out == "server \n" {
		t.Errorf("pidof bash or pgrep -x bash found the server, or pgrep did not find it by its name: %q, %v", out, err)
	}
	ctx := t.Context()
	// The root's directories have their usual modes, /tmp and /var/tmp
	// sticky (they were 777: any user could remove another's files).
	if out, err := m.Succeed(ctx, "stat -c '%a %n' /tmp /var/tmp /root /home"); err != nil || out != "1777 /tmp\n1777 /var/tmp\n700 /root\n755 /home\n" {
		t.Errorf("the root's directories: %q, %v; want /tmp and /var/tmp 1777, /root 700, /home 755", out, err)
	}
	// A wait's command takes the server too, and is run again until it
	// succeeds.
	if out, err := m.WaitUntilSucceeds(ctx, forkPathCheck, time.Minute); err != nil || out != "fork\n" {
		t.Errorf("a wait's command took the path %q (%v), want fork", out, err)
	}
	if _, err := m.Succeed(ctx, "rm -f /tmp/later; (sleep 0.5; touch /tmp/later) >/dev/null 2>&1 &"); err != nil {
		t.Fatal(err)
	}
	if out, err := m.WaitUntilSucceeds(ctx, "test -e /tmp/later && echo there", time.Minute); err != nil || out != "there\n" {
		t.Errorf("waiting for a file through the server: %q, %v", out, err)
	}
	// An orphan (its parent exits at once) is PID 1's to reap: once it has
	// ended it is gone, not a zombie.
	out, err = m.Succeed(ctx, "sh -c 'sleep 0.2 >/dev/null 2>&1 & echo $!'")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitUntilSucceeds(ctx, "! test -e /proc/"+strings.TrimSpace(out), time.Minute); err != nil {
		t.Errorf("the orphan %s was not reaped: %v", strings.TrimSpace(out), err)
	}
	// A test that kills every process kills the server too: the next
	// command execs its shell, or meets a new server, and the one after
	// that has a new server.
	if _, err := m.Succeed(ctx, "pkill -9 -x vmlab-forksrv"); err != nil {
		t.Fatal(err)
	}
	if out, err := m.Succeed(ctx, forkPathCheck); err != nil || (out != "fork\n" && out != "exec\n") {
		t.Errorf("after the server was killed: %q, %v", out, err)
	}
	if out, err := m.Succeed(ctx, forkPathCheck); err != nil || out != "fork\n" {
		t.Errorf("two commands after the server was killed: %q, %v; want a new server", out, err)
	}
	for _, c := range forkTwins {
		t.Run("twin "+c, func(t *testing.T) {
			ctx := t.Context()
			fork, ferr := m.Execute(ctx, c)
			exec, eerr := m.Execute(ctx, c, machine.Dir("/root"))
			if ferr != nil || eerr != nil {
				t.Fatalf("errors: fork server %v, exec %v", ferr, eerr)
			}
			if fork.Stdout != exec.Stdout || fork.Stderr != exec.Stderr || fork.Status != exec.Status || fork.Signal != exec.Signal {
				t.Errorf("through the fork server: %q, %q, exit %d %q\nexec'd: %q, %q, exit %d %q",
					fork.Stdout, fork.Stderr, fork.Status, fork.Signal, exec.Stdout, exec.Stderr, exec.Status, exec.Signal)
			}
		})
	}
}

// TestCommandSemanticsInVMExec runs commandSemantics in a guest booted with
// the fork server off (VMLAB_FORKSRV=off): every command execs its shell.
func TestCommandSemanticsInVMExec(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	boot, err := machine.PrepareBoot(machine.BootOptions{Agent: vmtest.Agent(t), ForkServer: "off"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "semantics-exec"}, Boot: boot, BootTimeout: 5 * time.Minute, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	runSemanticsInVM(t, m, false)
}

// runSemanticsInVM starts m and runs commandSemantics on it; fork says
// whether the commands without options must have taken the fork server.
func runSemanticsInVM(t *testing.T, m *machine.Machine, fork bool) {
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[bool]string{true: "fork\n", false: "exec\n"}
	if out, err := m.Succeed(ctx, forkPathCheck); err != nil || out != want[fork] {
		t.Fatalf("a command took the path %q (%v), want %q", out, err, want[fork])
	}
	if out, err := m.Succeed(ctx, forkPathCheck, machine.Dir("/root")); err != nil || out != "exec\n" {
		t.Fatalf("a command with a directory took the path %q (%v), want exec", out, err)
	}
	for _, tt := range commandSemantics {
		t.Run(tt.name, func(t *testing.T) {
			var opts []machine.ExecOption
			if tt.user != "" {
				opts = append(opts, machine.User(tt.user))
			}
			if tt.dir != "" {
				opts = append(opts, machine.Dir(tt.dir))
			}
			if len(tt.env) > 0 {
				opts = append(opts, machine.Env(tt.env...))
			}
			if tt.stdin != "" {
				opts = append(opts, machine.Stdin(strings.NewReader(tt.stdin)))
			}
			if tt.timeout > 0 {
				opts = append(opts, machine.Timeout(tt.timeout))
			}
			res, err := m.Execute(ctx, tt.cmd, opts...)
			var timeout *machine.TimeoutError
			switch {
			case tt.timed && !errors.As(err, &timeout):
				t.Fatalf("got error %v, want a timeout", err)
			case tt.timed:
				pid := strings.TrimSpace(res.Stdout)
				// Ended (gone, or a zombie until PID 1 reaps it) within 5 s.
				gone := "for i in $(seq 500); do { [ -e /proc/" + pid + " ] && ! grep -q '^State:.*Z' /proc/" + pid + "/status; } || exit 0; sleep 0.01; done; exit 1"
				if _, err := m.Succeed(ctx, gone); err != nil {
					t.Errorf("the background process %s outlived the timeout by 5 s: %v", pid, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if res.Stdout != tt.stdout {
				t.Errorf("stdout: got %q, want %q", res.Stdout, tt.stdout)
			}
			if (tt.stderr == "" && res.Stderr != "") || !regexp.MustCompile(tt.stderr).MatchString(res.Stderr) {
				t.Errorf("stderr: got %q, want a match of %q", res.Stderr, tt.stderr)
			}
			if res.Status != tt.exit || res.Signal != tt.signal {
				t.Errorf("got exit %d, signal %q; want exit %d, signal %q", res.Status, res.Signal, tt.exit, tt.signal)
			}
		})
	}
}
