package cli

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/ptytest"
	"github.com/vmlab/vmlab/internal/report"
)

// TestInterruptTakerOnce: under run -i, the test's taker gets the first
// SIGINT only; the second one cancels the run's context. A release after
// another taker was set leaves that one.
func TestInterruptTakerOnce(t *testing.T) {
	intr := &interrupts{}
	ctx, stop := signalContext(intr)
	defer stop()
	took := make(chan struct{}, 2)
	release := intr.setOnce(func() { took <- struct{}{} })
	defer release()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-took:
	case <-time.After(10 * time.Second):
		t.Fatal("the one-shot taker did not get the first SIGINT")
	}
	if ctx.Err() != nil {
		t.Fatal("the first SIGINT cancelled the run although the test took it")
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGINT did not cancel the run")
	}
	if len(took) != 0 {
		t.Error("the one-shot taker got the second SIGINT too")
	}

	in := &interrupts{}
	old := in.set(func() {})
	in.set(func() { took <- struct{}{} })
	old()
	if !in.take() {
		t.Error("an old taker's release removed the new taker")
	}
}

// hangStar has a test that hangs in a guest command (it says so on the
// console first) and one after it.
const hangStar = `a = machine(vlans = [])

def test_hang():
    a.succeed("echo hanging > /dev/console; sleep 600")

def test_next():
    a.succeed("true")
`

// TestRunInteractiveCtrlC: under vmlab run -i, Ctrl-C during a test that
// hangs ends the test (FAIL, "interrupted by Ctrl-C") and opens the REPL
// on its machine, still up, saying that Ctrl-C again stops the run; then
// exit() at the REPL stops the run: the next test is reported skipped
// and the run exits 1. Before, the Ctrl-C ended the whole run (exit 130)
// and exit() only went on with the next test. One boot.
func TestRunInteractiveCtrlC(t *testing.T) {
	file := writeStar(t, "inter.star", hangStar)
	out := t.TempDir()
	sc := startScreen(t, t.TempDir(), "run", "-i", "-v", "-out", out, file)
	expect(t, sc, `a: hanging`, 3*time.Minute)
	qemu := childPids(sc.Cmd.Process.Pid)
	sc.Type("\x03")
	expect(t, sc, `Ctrl-C: inter\.test_hang stops here .*; Ctrl-C again stops the run`, 10*time.Second)
	expect(t, sc, `FAIL.* inter\.test_hang`, 30*time.Second)
	expect(t, sc, `interrupted by Ctrl-C`, 10*time.Second)
	expect(t, sc, `REPL on its machines as the test left them: a \(up\)`, 10*time.Second)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("a.succeed('echo alive; pgrep -x sleep || echo no-sleep')\r")
	expect(t, sc, `"alive\\nno-sleep\\n"\r\n>>> `, time.Minute)
	sc.Type("help()\r")
	expect(t, sc, `exit\(\) \(or quit\(\)\) stops them and the run`, 10*time.Second)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("exit()\r")
	err := waitExit(t, sc, time.Minute)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFail {
		t.Errorf("vmlab run -i after exit(): %v, want exit %d", err, exitFail)
	}
	for _, want := range []string{"SKIP inter.test_next (not started: exit() at the REPL stopped the run)", "0 passed, 1 failed, 1 skipped"} {
		if !strings.Contains(sc.Text(), want) {
			t.Errorf("the terminal lacks %q:\n%s", want, sc.Text())
		}
	}
	if strings.Contains(sc.Text(), "RUN  inter.test_next") {
		t.Errorf("test_next ran after exit():\n%s", sc.Text())
	}
	for _, pid := range qemu {
		if !gone(pid, 10*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("qemu (pid %d) outlived the run", pid)
		}
	}
	junit, _ := os.ReadFile(filepath.Join(out, "junit.xml"))
	if !strings.Contains(string(junit), `<skipped message="not started: exit() at the REPL stopped the run">`) {
		t.Errorf("junit.xml lacks the skipped test:\n%s", junit)
	}
}

// TestRunInteractiveReports: the events.jsonl of a failing test under
// vmlab run -i (the REPL left at once) holds the same events as without
// -i, in the same order, times and console lines aside: its machine's
// Stop before its console log and its end. Before, the Stop (which comes
// when the REPL ends) was missing and the console log came before it.
// One boot each, both at once.
func TestRunInteractiveReports(t *testing.T) {
	file := writeStar(t, "inter.star", replStar)
	plainOut, interOut := t.TempDir(), t.TempDir()
	tmp := t.TempDir()
	plain := startScreen(t, tmp, "run", "-out", plainOut, "-run", "test_fail", file)
	inter := startScreen(t, tmp, "run", "-i", "-out", interOut, "-run", "test_fail", file)
	expect(t, inter, `>>> `, 3*time.Minute)
	inter.Type("\x04")
	for _, sc := range []*ptytest.Screen{plain, inter} {
		var exitErr *exec.ExitError
		if err := waitExit(t, sc, 3*time.Minute); !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFail {
			t.Errorf("got %v, want exit %d", err, exitFail)
		}
	}
	want, got := testEvents(t, plainOut), testEvents(t, interOut)
	if !slices.Contains(want, `{"kind":"stop","machine":"a","test":"inter.test_fail"}`) {
		t.Fatalf("without -i, no stop event:\n%s", strings.Join(want, "\n"))
	}
	if !slices.Equal(got, want) {
		t.Errorf("events under -i:\n%s\n\nwithout -i:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// testEvents are the events in dir/events.jsonl as JSON objects without
// their times, durations, boot stages and console lines (which differ
// from run to run), files relative to dir.
func testEvents(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e["kind"] == string(report.Console) {
			continue
		}
		delete(e, "time")
		delete(e, "duration")
		if e["kind"] == string(report.Boot) {
			delete(e, "text")
		}
		if f, ok := e["file"].(string); ok {
			e["file"], _ = filepath.Rel(dir, f)
		}
		norm, _ := json.Marshal(e)
		events = append(events, string(norm))
	}
	return events
}

// TestRunInteractiveExit: with -i=always, Ctrl-D at the REPL goes on with
// the next test and exit() stops the run: the tests left are reported
// skipped and the run exits 1 although every test that ran passed. Before,
// exit() went on as Ctrl-D does, so N tests took N exits. No machine: the
// tests boot nothing.
func TestRunInteractiveExit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "three.star")
	src := "def test_a():\n    pass\n\ndef test_b():\n    pass\n\ndef test_c():\n    pass\n"
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := startScreen(t, t.TempDir(), "run", "-i=always", file)
	expect(t, sc, `PASS.* three\.test_a`, time.Minute)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("\x04") // Ctrl-D: on to test_b
	expect(t, sc, `PASS.* three\.test_b`, time.Minute)
	expect(t, sc, `>>> `, 10*time.Second)
	sc.Type("exit()\r")
	err := waitExit(t, sc, time.Minute)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFail {
		t.Errorf("vmlab run -i=always after exit(): %v, want exit %d (a test did not run)", err, exitFail)
	}
	for _, want := range []string{"SKIP three.test_c (not started: exit() at the REPL stopped the run)", "2 passed, 0 failed, 1 skipped"} {
		if !strings.Contains(sc.Text(), want) {
			t.Errorf("the terminal lacks %q:\n%s", want, sc.Text())
		}
	}
	if strings.Contains(sc.Text(), "RUN  three.test_c") {
		t.Errorf("test_c ran after exit():\n%s", sc.Text())
	}
}

// waitExit waits for the program on sc to exit, for at most timeout (then
// kills it and fails the test), and returns how it exited.
func waitExit(t *testing.T, sc *ptytest.Screen, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- sc.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		sc.Cmd.Process.Kill()
		<-done
		t.Fatalf("still running after %v; the terminal showed:\n%s", timeout, sc.Text())
		return nil
	}
}
