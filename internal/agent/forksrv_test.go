package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agent/forksrv"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// testForkServer builds the builtin with the host's cc and starts a fork
// server with the host's bash (Debian's, as the guest's), as the agent
// does; it is stopped at the end of the test.
func testForkServer(t *testing.T) *forkServer {
	t.Helper()
	f, _ := startTestForkServer(t)
	t.Cleanup(func() {
		f.conn.Close()
		<-f.exited
	})
	return f
}

// startTestForkServer skips the test where the host cannot run a fork
// server, else builds the builtin and starts one; it returns the server
// and the library it loaded. The caller stops it.
func startTestForkServer(t *testing.T) (*forkServer, []byte) {
	t.Helper()
	if _, err := exec.LookPath("/bin/bash"); err != nil || syscall.Getuid() != 0 || len(coverageEnv) > 0 {
		t.Skip("needs what TestCommandSemantics needs")
	}
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler on this host")
	}
	closeInherited(t)
	so, err := forksrv.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lib, err := os.ReadFile(so)
	if err != nil {
		t.Fatal(err)
	}
	bootstrap := forkBootstrap
	if !canSetArgs(t) {
		bootstrap = forkBootstrapKeepArgs
	}
	f, err := startForkServer(lib, strictShell(), bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	return f, lib
}

// canSetArgs reports whether this process may set a command line
// (CAP_SYS_RESOURCE, which the guest's PID 1 has). Without it the cases
// that read one are skipped: TestCommandSemanticsInVM runs them.
func canSetArgs(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
			caps, err := strconv.ParseUint(hex, 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// readsArgs reports whether command reads a process's command line, which
// a server started without CAP_SYS_RESOURCE leaves as its own.
func readsArgs(t *testing.T, command string) bool {
	return (strings.Contains(command, "cmdline") || strings.Contains(command, "args=")) && !canSetArgs(t)
}

// forkRun runs command through f as exec() does, with stdin ("" is
// /dev/null) and a timeout, and returns its outputs and result.
func forkRun(t *testing.T, f *forkServer, command, stdin string, timeout time.Duration) (stdout, stderr string, res agentproto.Result) {
	t.Helper()
	in, err := os.Open(os.DevNull)
	if stdin != "" {
		var w *os.File
		in, w, err = os.Pipe()
		if err == nil {
			go func() {
				io.WriteString(w, stdin)
				w.Close()
			}()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var outs [2]bytes.Buffer
	var ws [2]*os.File
	var wg sync.WaitGroup
	for i := range outs {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
		wg.Go(func() {
			io.Copy(&outs[i], r)
			r.Close()
		})
	}
	pid, err := f.spawn(t.Context(), in, ws[0], ws[1], f.dir, command)
	ws[0].Close()
	ws[1].Close()
	if err != nil {
		t.Fatalf("spawn %q: %v", command, err)
	}
	res = waitProcess(t.Context(), pid, forkWait(pid), timeout)
	wg.Wait()
	return outs[0].String(), outs[1].String(), res
}

// execRun runs command the exec way, for the cases compared with it.
func execRun(t *testing.T, command string) (stdout, stderr string, res agentproto.Result) {
	t.Helper()
	cmd, err := command_(t, command)
	if err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res = waitCommand(t.Context(), cmd, 0)
	return o.String(), e.String(), res
}

func command_(t *testing.T, c string) (*exec.Cmd, error) {
	return command(t.Context(), &agentproto.Exec{Command: c}, strictShell())
}

// TestCommandSemanticsForkServer runs commandSemantics through the fork
// server: every case it may take passes, and the others are exactly those
// with an option that keeps them on the exec path.
func TestCommandSemanticsForkServer(t *testing.T) {
	f := testForkServer(t)
	var execOnly []string
	for _, tt := range commandSemantics {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.request(tt.cmd)
			if !forkEligible(req) {
				execOnly = append(execOnly, tt.name)
				return
			}
			if readsArgs(t, tt.cmd) {
				t.Skip("this host's root may not set a command line (no CAP_SYS_RESOURCE)")
			}
			stdout, stderr, res := forkRun(t, f, tt.cmd, tt.stdin, tt.timeout)
			for _, m := range tt.diffs(t, stdout, stderr, res) {
				t.Error(m)
			}
		})
	}
	if want := []string{"another directory", "added environment", "another user"}; !slices.Equal(execOnly, want) {
		t.Errorf("cases kept on the exec path: %q, want %q", execOnly, want)
	}
}

// forkTwins are commands whose whole outcome through the fork server must be
// the exec path's, byte for byte: what a warm shell could get wrong.
var forkTwins = []string{
	`echo "$-"`,
	`echo "${!-none} $# $0 ${BASH_ARGV0}"`,
	`echo "$_"`,
	`[ "$BASHPID" = $$ ] && echo same`,
	`echo "$SHLVL $BASH_SUBSHELL ${FUNCNAME-unset} ${#BASH_SOURCE[@]} ${BASH_LINENO-unset}"`,
	`echo "${PIPESTATUS[*]} $?"`,
	`echo $LINENO; echo $LINENO`,
	`set -x; true`,
	"echo a\necho $LINENO >&2\n(",
	`declare -p | grep -Ev '^declare -[-a-zA-Z]* (BASHPID|BASH_COMMAND|BASH_EXECUTION_STRING|EPOCHREALTIME|EPOCHSECONDS|PPID|RANDOM|SECONDS|SRANDOM)='`,
	`declare -f; alias; trap -p; shopt -p; set -o; echo done`,
	`enable -a; compgen -b | wc -l`,
	`type forksrv`,
	// Read by the shell itself, with no child running: its steady
	// signal mask, ignored and caught signals.
	`while IFS= read -r l; do case $l in Sig[BIC]*|Cap[IPE]*|NoNewPrivs*|Umask*) echo "$l";; esac; done </proc/$$/status`,
	`ulimit -a; umask`,
	`yes | head -1`,
	`(sleep 0.1; echo child) & wait; echo reaped`,
	`for i in 1 2 3; do sh -c 'echo $$' >/dev/null & done; wait; echo all reaped`,
	`exec echo replaced`,
	`exec sh -c 'echo "$0"'`,
	`cat /proc/$$/comm; readlink /proc/$$/exe; tr '\0' '\n' </proc/$$/environ | sort`,
	`cat /proc/$$/comm`,
	`echo "$HOSTNAME"`,
	`[ "$(cut -d' ' -f4 /proc/$$/stat)" = "$PPID" ] && [ "$PPID" = "$(cut -d' ' -f4 /proc/self/stat | xargs -I{} cut -d' ' -f4 /proc/{}/stat)" ] && echo parent`,
	`x=$(echo sub); echo "$x $(( RANDOM >= 0 ))"`,
	`f() { return 3; }; f`,
	`read -r line; echo "$line"`,
	`kill -PIPE $$`,
	`trap 'echo trapped; exit 4' TERM; kill -TERM $$; echo after`,
	`cd /tmp; echo "$PWD $OLDPWD"`,
	`echo ${#BASH_EXECUTION_STRING}`,
	`ls /proc/$$/fd`,
	`ps -o comm= -p $$; ps -o args= -p $$ | tr -d 0-9`,
	`echo $((SECONDS <= 1))`,
	// The last simple command is exec'd without a fork, as bash -c does.
	`sh -c 'cat /proc/$PPID/comm'`,
}

// TestForkServerSameAsExec runs forkTwins both ways and wants the same.
func TestForkServerSameAsExec(t *testing.T) {
	f := testForkServer(t)
	// SECONDS counts from the command, not from the server's start.
	started := time.Now()
	for _, c := range forkTwins {
		t.Run(c, func(t *testing.T) {
			if readsArgs(t, c) {
				t.Skip("this host's root may not set a command line (no CAP_SYS_RESOURCE)")
			}
			so, se, sr := execRun(t, c)
			fo, fe, fr := forkRun(t, f, c, "", 0)
			if fo != so || fe != se || fr != sr {
				t.Errorf("through the fork server: stdout %q, stderr %q, %+v\nexec'd: stdout %q, stderr %q, %+v", fo, fe, fr, so, se, sr)
			}
		})
		if c == forkTwins[0] {
			// Age the server past SECONDS' first second before the
			// SECONDS case runs (it is not a wait for anything).
			time.Sleep(time.Until(started.Add(1500 * time.Millisecond)))
		}
	}
}

// TestForkServerIsolation runs commands one after the other through one
// server: nothing one of them changes is seen by the next, and RANDOM
// differs between them.
func TestForkServerIsolation(t *testing.T) {
	f := testForkServer(t)
	change := `trap 'echo leaked' EXIT; set +e; set -x; cd /tmp; f() { :; }; export V=1; W=2; alias l=ls; ulimit -n 64; umask 077; shopt -s nullglob; enable -n echo; trap '' PIPE`
	check := `trap -p; echo "$-"; pwd; type f 2>&1 || true; echo "${V-unset} ${W-unset}"; alias; ulimit -n; umask; shopt nullglob || true; type echo`
	want, wantErr, wantRes := execRun(t, check)
	if _, _, res := forkRun(t, f, change, "", 0); res.Exit != 0 {
		t.Fatalf("the changing command: %+v", res)
	}
	got, gotErr, gotRes := forkRun(t, f, check, "", 0)
	if got != want || gotErr != wantErr || gotRes != wantRes {
		t.Errorf("after a command that changed its shell: stdout %q, stderr %q, %+v; want %q, %q, %+v", got, gotErr, gotRes, want, wantErr, wantRes)
	}
	var randoms []string
	for range 3 {
		out, _, _ := forkRun(t, f, `echo $RANDOM $SRANDOM`, "", 0)
		randoms = append(randoms, out)
	}
	if randoms[0] == randoms[1] && randoms[1] == randoms[2] {
		t.Errorf("three commands drew the same random numbers: %q", randoms[0])
	}
}

// TestForkServerLongCommand: a command as long as an exec allows runs
// through the server; one byte more is not eligible, and fails on the exec
// path as it always did.
func TestForkServerLongCommand(t *testing.T) {
	f := testForkServer(t)
	long := ": " + strings.Repeat("x", maxArgLen-1-len(": ; echo ok")) + "; echo ok"
	if len(long) != maxArgLen-1 || !forkEligible(&agentproto.Exec{Command: long}) {
		t.Fatalf("a command of %d bytes is not eligible", len(long))
	}
	if forkEligible(&agentproto.Exec{Command: long + " "}) {
		t.Errorf("a command of %d bytes is eligible: exec refuses it", len(long)+1)
	}
	so, se, sr := execRun(t, long)
	fo, fe, fr := forkRun(t, f, long, "", 0)
	if fo != "ok\n" || fo != so || fe != se || fr != sr {
		t.Errorf("through the fork server: %q, %q, %+v; exec'd: %q, %q, %+v", fo, fe, fr, so, se, sr)
	}
	if _, err := command_(t, long+" "); err != nil {
		t.Fatal(err)
	}
	cmd, _ := command_(t, long+" ")
	if err := cmd.Start(); err == nil {
		cmd.Wait()
		t.Errorf("exec of a %d-byte argument started", len(long)+1)
	}
}

// TestForkServerGone: a server that died does not run the request, and
// says so (errNotRun), so the exec path runs the command once.
func TestForkServerGone(t *testing.T) {
	f := testForkServer(t)
	if out, _, _ := forkRun(t, f, "echo up", "", 0); out != "up\n" {
		t.Fatalf("got %q", out)
	}
	// The server is not a bash for pgrep, pidof or pkill.
	out, err := exec.Command("sh", "-c", fmt.Sprintf("cat /proc/%d/comm; tr '\\0' ' ' </proc/%d/cmdline", f.pid, f.pid)).Output()
	want := "vmlab-forksrv\nvmlab-forksrv "
	if !canSetArgs(t) {
		want = "vmlab-forksrv\n/bin/bash -euo pipefail -c " + forkBootstrapKeepArgs + " "
	}
	if err != nil || string(out) != want {
		t.Errorf("the server's comm and cmdline: %q, %v", out, err)
	}
	syscall.Kill(f.pid, syscall.SIGKILL)
	<-f.exited
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	_, err = f.spawn(t.Context(), in, os.Stdout, os.Stderr, f.dir, "echo must not run")
	if !errors.Is(err, errNotRun) {
		t.Errorf("spawn on a dead server: %v, want %v", err, errNotRun)
	}
}

// useForkServer makes the agent's own fork server (forkServerFor) use the
// builtin built by the host's cc, and stops it at the end of the test.
func useForkServer(t *testing.T) {
	t.Helper()
	f, lib := startTestForkServer(t) // skips where the host cannot
	forkServers.mu.Lock()
	forkLib, forkServers.cur, forkServers.broken, forkServers.failures = lib, f, false, 0
	forkServers.mu.Unlock()
	t.Cleanup(func() {
		forkServers.mu.Lock()
		forkLib, forkServers.cur = nil, nil
		forkServers.mu.Unlock()
		f.conn.Close()
		<-f.exited
	})
}

// TestRunCheckForkServer: a wait's command takes the fork server when it
// may, with the exec path's outcome: its stdout, its status, and a
// background process holding the output failing the check.
func TestRunCheckForkServer(t *testing.T) {
	useForkServer(t)
	for _, c := range []struct {
		cmd, user, out string
		ok             bool
	}{
		{cmd: forkPathCheck, out: "fork\n", ok: true},
		{cmd: forkPathCheck, user: "nobody", out: "exec\n", ok: true},
		{cmd: "echo out; echo err >&2", out: "out\n", ok: true},
		{cmd: "echo a; false", out: "a\n", ok: false},
		{cmd: "false | true", ok: false},
		{cmd: "kill $$", ok: false},
		{cmd: "sleep 5 & echo bg", out: "bg\n", ok: false},
	} {
		ok, out := runCheck(t.Context(), &agentproto.Wait{Command: c.cmd, User: c.user})
		if ok != c.ok || out != c.out {
			t.Errorf("%q as %q: got %v, %q; want %v, %q", c.cmd, c.user, ok, out, c.ok, c.out)
		}
	}
}

// forkPathCheck says which path ran it: the fork server's shell has the
// builtin's library mapped (a memfd named vmlab-forksrv.so).
const forkPathCheck = `case "$(cat /proc/$$/maps)" in *vmlab-forksrv*) echo fork;; *) echo exec;; esac`

// TestForkServerRefused: a library bash will not load leaves no server
// and an error with bash's reason, which the agent logs once before it
// execs every shell.
func TestForkServerRefused(t *testing.T) {
	if _, err := exec.LookPath("/bin/bash"); err != nil || syscall.Getuid() != 0 || len(coverageEnv) > 0 {
		t.Skip("needs what TestCommandSemantics needs")
	}
	_, err := startForkServer([]byte("not a library"), strictShell(), forkBootstrap)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "enable") || !strings.Contains(err.Error(), "did not start") {
		t.Errorf("got %v, want bash's refusal of enable -f", err)
	}
}
