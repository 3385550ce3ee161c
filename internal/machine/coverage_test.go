package machine_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/machine"
)

// TestFakeCoverageState: a machine collecting coverage makes its raw
// directory at its first boot (the share, guest/, open to the guest's
// users, its go/ and gcov/ writable by all, sticky), and Close writes
// state.json with why the data is partial, in order: a command a signal
// killed, crash(), a QEMU that died, and a machine the test's end could
// not shut down cleanly (the fake's agent refuses to power the host off)
// and killed, then the agent's notes (a service a signal ended), which
// Close removes. A machine that never booted leaves nothing.
func TestFakeCoverageState(t *testing.T) {
	dir := coverage.MachineDir(t.TempDir(), "f.test", "fake")
	stops := make(chan error, 8)
	m := fakeMachineConfig(t, "serve", machine.Config{
		Coverage: machine.Coverage{Dir: dir, Test: "f.test"},
		OnStop:   func(n machine.StopNote) { stops <- n.Err },
	})
	if _, err := m.Execute(t.Context(), "kill -9 $$"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{
		dir:                                     fs.ModeDir | 0o700,
		filepath.Join(dir, coverage.GuestDir):   fs.ModeDir | 0o755,
		coverage.GuestData(dir, coverage.GoDir): fs.ModeDir | fs.ModeSticky | 0o777,
		coverage.GuestData(dir, coverage.GcovDir): fs.ModeDir | fs.ModeSticky | 0o777,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: got %v, %v; want mode %v", path, fi.Mode(), err, want)
		}
	}
	m.Crash()
	<-stops
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(m.QEMUPid(), syscall.SIGKILL)
	select {
	case <-stops:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed QEMU was not noticed in 10 s")
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What a fast-mode agent leaves at a clean power-off.
	notes := filepath.Join(dir, coverage.GuestDir, agentproto.CoverageNotes)
	os.WriteFile(notes, []byte("service web was killed by signal 9 (killed)\n"), 0o600)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var st coverage.State
	b, err := os.ReadFile(filepath.Join(dir, coverage.StateFile))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`command "kill -9 $$" was killed by signal 9`,
		"crashed: crash() killed it",
		"went down: qemu exited: signal: killed",
		"was not shut down cleanly (poweroff)",
		"was still running at the test's end and was killed",
		"service web was killed by signal 9 (killed)",
	}
	if st.Test != "f.test" || st.Machine != "fake" || !st.Partial || len(st.Reasons) != len(want) {
		t.Fatalf("got %s, want test f.test, machine fake, partial, with %d reasons", b, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(st.Reasons[i], w) {
			t.Errorf("reason %d: got %q, want it to start with %q", i, st.Reasons[i], w)
		}
	}

	if _, err := os.Stat(notes); err == nil {
		t.Errorf("the agent's notes are still in the raw directory")
	}
	// Close is idempotent: the state stays whole.
	m.Close()
	if again, _ := os.ReadFile(filepath.Join(dir, coverage.StateFile)); string(again) != string(b) {
		t.Errorf("a second Close wrote %s, want the same state", again)
	}

	never := coverage.MachineDir(t.TempDir(), "f.test", "fake")
	fakeMachineConfig(t, "serve", machine.Config{Coverage: machine.Coverage{Dir: never, Test: "f.test"}}).Close()
	if _, err := os.Stat(never); err == nil {
		t.Errorf("a machine that never booted made %s", never)
	}
}

// TestFakeCoverageSelfOff: a fast-mode guest that powers itself off
// stopped none of its processes first: its data is partial.
func TestFakeCoverageSelfOff(t *testing.T) {
	dir := coverage.MachineDir(t.TempDir(), "f.test", "fake")
	stops := make(chan error, 1)
	m := fakeMachineConfig(t, "selfoff", machine.Config{
		Coverage: machine.Coverage{Dir: dir, Test: "f.test"},
		OnStop:   func(n machine.StopNote) { stops <- n.Err },
	})
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The command may end before the machine goes down or with it.
	m.Execute(t.Context(), "kill -USR1 $PPID")
	select {
	case err := <-stops:
		if err != nil {
			t.Fatalf("got a stop with %v, want a clean one", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the power-off was not noticed in 10 s")
	}
	m.Close()
	b, _ := os.ReadFile(filepath.Join(dir, coverage.StateFile))
	if !strings.Contains(string(b), `"powered itself off without stopping its processes"`) || !strings.Contains(string(b), `"partial": true`) {
		t.Errorf("got state %s, want it partial: powered itself off", b)
	}
}

// TestFakeCoverageBootFailed: a boot that fails says so in the state.
func TestFakeCoverageBootFailed(t *testing.T) {
	dir := coverage.MachineDir(t.TempDir(), "f.test", "fake")
	m := fakeMachineConfig(t, "panic", machine.Config{Coverage: machine.Coverage{Dir: dir, Test: "f.test"}})
	if err := m.Start(t.Context()); err == nil {
		t.Fatal("the boot of a guest that panics succeeded")
	}
	m.Close()
	b, _ := os.ReadFile(filepath.Join(dir, coverage.StateFile))
	if !strings.Contains(string(b), `"did not boot: fake: `) || !strings.Contains(string(b), `"partial": true`) {
		t.Errorf("got state %s, want it partial: did not boot", b)
	}
}
