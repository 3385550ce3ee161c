package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/script"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestReplPlainInput: with statements on stdin (not a terminal) the REPL
// reads whole chunks, multi-line ones too, prints values and failures,
// goes on after a failure and says so in its exit.
func TestReplPlainInput(t *testing.T) {
	f, err := script.Load("plain.star", []byte("a = machine()\ndef test_ok():\n    log('in the test')\ndef boom():\n    fail('deep')\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	events := newReplEvents(&out, false)
	s, err := f.Open(t.Context(), &machine.Boot{}, t.TempDir(), events) // nothing boots
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := strings.Join([]string{
		"def f(x):",
		"    return [x,",
		"            x * 2]",
		"",
		"f(3)",
		"fail('on purpose')",
		"boom()",
		"print('still here')",
		"test_ok()",
		"None",
		"f(", // the input ends inside a chunk: it runs, and fails
	}, "\n")
	e := &env{stdin: strings.NewReader(in), stdout: &out, stderr: &out}
	failed := newREPL(e, s, events).run(t.Context())
	events.Close()
	want := strings.Join([]string{
		"[3, 6]",
		"error: fail: on purpose",
		"  at:",
		"    Traceback (most recent call last):",
		"      <repl>:6:5: in <expr>", // the input's lines
		"error: fail: deep",
		"  line: plain.star:5: fail('deep')",
		"  at:",
		"    Traceback (most recent call last):",
		"      <repl>:7:5: in <expr>",
		"      plain.star:5:9: in boom",
		"still here",
		"RUN  plain.test_ok",
		"  in the test",
		"PASS plain.test_ok (Ns)",
		"True",
		"error: <repl>:12:1: got end of file, want ')'",
		"1 passed, 0 failed",
	}, "\n") + "\n"
	if got := regexp.MustCompile(`\(\d+\.\d+s\)`).ReplaceAllString(out.String(), "(Ns)"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !failed {
		t.Error("run says no chunk failed")
	}
}

func TestSplitWord(t *testing.T) {
	for _, tt := range []struct{ before, head, word string }{
		{"", "", ""},
		{"a.su", "", "a.su"},
		{"x = a.su", "x = ", "a.su"},
		{"print(sta", "print(", "sta"},
		{"f(x, re.", "f(x, ", "re."},
		{"s = 'é' + ab_1", "s = 'é' + ", "ab_1"},
	} {
		if head, word := splitWord(tt.before); head != tt.head || word != tt.word {
			t.Errorf("splitWord(%q): got %q, %q; want %q, %q", tt.before, head, word, tt.head, tt.word)
		}
	}
}

// TestInteractiveRefused: vmlab run -i without a terminal on stdin, or
// with -json, is refused before anything boots.
func TestInteractiveRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no terminal", []string{"-i", "testdata/pass.star"}, "-i opens a REPL, which wants a terminal on stdin"},
		{"always, no terminal", []string{"-i=always", "testdata/pass.star"}, "-i opens a REPL, which wants a terminal on stdin"},
		{"json", []string{"-i", "-json", "testdata/pass.star"}, "-i and -json both want stdout"},
		{"bad value", []string{"-i=sometimes", "testdata/pass.star"}, "want -i (after a failing test) or -i=always"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
			code := runRun(t.Context(), e, tt.args)
			if code != exitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("got exit %d, %q; want %d and %q", code, stderr.String(), exitUsage, tt.want)
			}
			if strings.Contains(stderr.String(), "vmlab: kernel ") {
				t.Errorf("it prepared a boot first: %q", stderr.String())
			}
		})
	}
}

// TestInterruptTaker: while the REPL runs a call, SIGINT cancels the call
// (the taker) and not the command's context; without a taker it does.
func TestInterruptTaker(t *testing.T) {
	intr := &interrupts{}
	ctx, stop := signalContext(intr)
	defer stop()
	took := make(chan struct{}, 1)
	release := intr.set(func() { took <- struct{}{} })
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-took:
	case <-time.After(10 * time.Second):
		t.Fatal("the taker did not get SIGINT")
	}
	if ctx.Err() != nil {
		t.Fatal("SIGINT cancelled the context although the REPL took it")
	}
	release()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT without a taker did not cancel the context")
	}
}

const replStar = `a = machine(vlans = [])

def test():
    a.succeed("echo from-test > /tmp/state")

def test_fail():
    a.succeed("echo left > /tmp/mark")
    a.succeed("false")
`

// startScreen runs vmlab ARGS on a new terminal, with tmp as its TMPDIR
// and XDG_STATE_HOME (the REPL's history).
func startScreen(t *testing.T, tmp string, args ...string) *ptytest.Screen {
	t.Helper()
	bin := vmtest.Agent(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "VMLAB_AGENT="+bin, "XDG_STATE_HOME="+tmp, "TERM=xterm")
	sc, err := ptytest.Start(cmd, pty.Size{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	return sc
}

// expect waits for re on the screen, within timeout.
func expect(t *testing.T, sc *ptytest.Screen, re string, timeout time.Duration) {
	t.Helper()
	if _, err := sc.Expect(re, timeout); err != nil {
		t.Fatal(err)
	}
}

// TestReplOnTerminal drives vmlab repl through a real terminal, as a user
// at the keyboard: a machine command, a multi-line def and a call, an
// error that leaves the REPL alive, Tab completion, Ctrl-C cancelling a long command, a
// test that returns with its machine up and its state kept, the history,
// and Ctrl-D leaving with no QEMU left.
func TestReplOnTerminal(t *testing.T) {
	file := writeStar(t, "repl.star", replStar)
	tmp := t.TempDir()
	sc := startScreen(t, tmp, "repl", "-v", file)
	boot := 3 * time.Minute
	expect(t, sc, `>>> `, boot)
	sc.Type("start_all()\r")
	expect(t, sc, `a: up in`, boot)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("a.succeed('uname -n')\r")
	expect(t, sc, `"a\\n"\r\n>>> `, time.Minute)
	qemu := childPids(sc.Cmd.Process.Pid)
	if len(qemu) != 1 {
		t.Fatalf("got qemu pids %v, want one", qemu)
	}

	sc.Type("def twice(c):\r")
	expect(t, sc, `\.\.\. `, 10*time.Second)
	sc.Type("    return a.succeed(c) * 2\r")
	expect(t, sc, `\.\.\. `, 10*time.Second)
	sc.Type("\r")
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("twi\t('echo x')\r") // Tab completes the name
	expect(t, sc, `"x\\nx\\n"\r\n>>> `, time.Minute)

	sc.Type("a.succeed('exit 3')\r")
	expect(t, sc, `error: .*exit status 3`, time.Minute)
	expect(t, sc, `>>> `, 10*time.Second)

	// Ctrl-C once the guest runs the command (its console line says so,
	// shown by -v): the call ends, the REPL and the machine stay.
	sc.Type("a.succeed('echo sleeping > /dev/console; sleep 600')\r")
	expect(t, sc, `a: sleeping`, time.Minute)
	start := time.Now()
	sc.Type("\x03")
	expect(t, sc, `error: .*interrupted by Ctrl-C`, 30*time.Second)
	expect(t, sc, `>>> `, 10*time.Second)
	t.Logf("Ctrl-C to the prompt: %v", time.Since(start))
	sc.Type("a.succeed('echo alive; pgrep -x sleep || echo no-sleep')\r")
	expect(t, sc, `"alive\\nno-sleep\\n"\r\n>>> `, time.Minute)

	// Ctrl-C at the prompt clears the line. The editor echoes the line
	// once it reads keys, with SIGINT off: the Ctrl-C goes after that (liner
	// writes the prompt a moment before it turns SIGINT off; a Ctrl-C
	// then is a signal, which drops the line typed and shows nothing).
	sc.Type("this is not run")
	expect(t, sc, `this is not run`, 10*time.Second)
	sc.Type("\x03")
	expect(t, sc, `>>> `, 10*time.Second)

	sc.Type("test()\r")
	expect(t, sc, `PASS.* repl\.test `, time.Minute)
	expect(t, sc, `True\r\n>>> `, 10*time.Second)
	sc.Type("a.succeed('cat /tmp/state')\r")
	expect(t, sc, `"from-test\\n"`, time.Minute)

	// History: the previous chunk comes back with the up arrow.
	sc.Type("\x1b[A\r")
	expect(t, sc, `"from-test\\n"`, time.Minute)

	// start() returns at once and the boot goes on after the chunk: the
	// next call waits for it.
	sc.Type("a.shutdown()\r")
	expect(t, sc, `>>> `, time.Minute)
	sc.Type("a.start()\r")
	expect(t, sc, `a: booting`, 10*time.Second)
	sc.Type("a.succeed('echo back')\r")
	expect(t, sc, `"back\\n"\r\n>>> `, boot)
	qemu = childPids(sc.Cmd.Process.Pid)
	if len(qemu) != 1 {
		t.Fatalf("got qemu pids %v after the restart, want one", qemu)
	}

	sc.Type("\x04")
	if err := sc.Wait(); err != nil {
		t.Errorf("vmlab repl after Ctrl-D: %v, want exit 0", err)
	}
	if !gone(qemu[0], 10*time.Second) {
		syscall.Kill(qemu[0], syscall.SIGKILL)
		t.Errorf("qemu (pid %d) outlived the REPL", qemu[0])
	}
	history := filepath.Join(tmp, "vmlab", "repl_history")
	b, err := os.ReadFile(history)
	if fi, _ := os.Stat(history); err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(string(b), "a.succeed('cat /tmp/state')") {
		t.Errorf("history: got %v, %q; want a 0600 file with the chunks", err, b)
	}
}

// TestRunInteractive: vmlab run -i on a failing test opens the REPL on its
// machine as the test left it; Ctrl-D leaves and the run exits with the
// test's failure.
func TestRunInteractive(t *testing.T) {
	file := writeStar(t, "inter.star", replStar)
	sc := startScreen(t, t.TempDir(), "run", "-i", "-run", "test_fail", file)
	expect(t, sc, `FAIL.* inter\.test_fail`, 3*time.Minute)
	expect(t, sc, `REPL on its machines as the test left them: a \(up\)`, 10*time.Second)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("a.succeed('cat /tmp/mark')\r")
	expect(t, sc, `"left\\n"\r\n>>> `, time.Minute)
	sc.Type("test()\r") // a test run at the REPL has no summary of its own
	expect(t, sc, `True\r\n>>> `, time.Minute)
	sc.Type("\x04")
	err := sc.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFail {
		t.Errorf("vmlab run -i after Ctrl-D: %v, want exit %d (the test failed)", err, exitFail)
	}
	if !strings.Contains(sc.Text(), "0 passed, 1 failed") || strings.Count(sc.Text(), " passed, ") != 1 {
		t.Errorf("want the run's summary, once:\n%s", sc.Text())
	}
}

// TestReplTerminated: SIGTERM while the REPL waits at its prompt stops the
// machines, gives the terminal back and exits 143.
func TestReplTerminated(t *testing.T) {
	file := writeStar(t, "term.star", replStar)
	sc := startScreen(t, t.TempDir(), "repl", file)
	expect(t, sc, `>>> `, 3*time.Minute)
	sc.Type("start_all()\r")
	expect(t, sc, `a: up in .*\r\n>>> `, 3*time.Minute)
	qemu := childPids(sc.Cmd.Process.Pid)
	if len(qemu) != 1 {
		t.Fatalf("got qemu pids %v, want one", qemu)
	}
	sc.Cmd.Process.Signal(syscall.SIGTERM)
	err := sc.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 143 {
		t.Errorf("after SIGTERM: %v, want exit 143", err)
	}
	if !gone(qemu[0], 10*time.Second) {
		syscall.Kill(qemu[0], syscall.SIGKILL)
		t.Errorf("qemu (pid %d) outlived the REPL", qemu[0])
	}
}

// writeStar writes a test file called name with src in a new temporary
// directory and returns its path.
func writeStar(t *testing.T, name, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
