package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPrivateFiles(t *testing.T) {
	s := serve(t, "web", newFakeLab())
	for path, want := range map[string]os.FileMode{filepath.Dir(s.Path()): 0o700, s.Path(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
}

func TestOpenRuntimeDirRefused(t *testing.T) {
	x := shortTemp(t)
	t.Setenv("XDG_RUNTIME_DIR", x)
	if err := os.Mkdir(filepath.Join(x, "vmlab"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(x, "vmlab"), 0o755)
	_, err := Listen("web", LabInfo{}, newFakeLab(), nil)
	if err == nil || !strings.Contains(err.Error(), "is open to others") {
		t.Errorf("got %v, want a refusal naming the mode", err)
	}
}

func TestSameNameTwice(t *testing.T) {
	serve(t, "web", newFakeLab())
	if err := CheckFree("other", nil); err != nil {
		t.Errorf("CheckFree of a name not up: %v", err)
	}
	if err := CheckFree("web", nil); !strings.Contains(fmt.Sprint(err), `lab "web" is already up`) {
		t.Errorf("CheckFree of a lab up: got %v, want it already up", err)
	}
	_, err := Listen("web", LabInfo{File: "/src/other.star"}, newFakeLab(), nil)
	var up *AlreadyUpError
	if !errors.As(err, &up) {
		t.Fatalf("got %v, want an *AlreadyUpError", err)
	}
	for _, w := range []string{`lab "web" is already up`, fmt.Sprintf("pid %d", os.Getpid()), "/src/web.star", "-lab NAME"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got %q, want it to say %q", err, w)
		}
	}
}

func TestStaleSocket(t *testing.T) {
	x := shortTemp(t)
	t.Setenv("XDG_RUNTIME_DIR", x)
	dir, err := RuntimeDir()
	if err != nil {
		t.Fatal(err)
	}
	// What a SIGKILLed lab leaves: its lock file (unlocked now) and socket.
	stale := func() {
		os.WriteFile(lockPath(dir, "web"), []byte(`{"name":"web","pid":1}`), 0o600)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath(dir, "web"), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close()
	}
	stale()
	var notes []string
	_, err = Dial(ctxT(t), "web", func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) })
	if err == nil || !strings.Contains(err.Error(), `lab "web" is not up`) {
		t.Errorf("dial: got %v, want lab \"web\" is not up", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], `removed the stale socket of lab "web"`) {
		t.Errorf("notes: got %q, want one saying the stale socket was removed", notes)
	}
	if _, err := os.Stat(sockPath(dir, "web")); !os.IsNotExist(err) {
		t.Errorf("the stale socket is still there (%v)", err)
	}
	stale()
	s, err := Listen("web", LabInfo{}, newFakeLab(), t.Logf)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer s.Close()
	dial(t, "web")
}

func TestLabSelection(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", shortTemp(t))
	if _, err := Dial(ctxT(t), "", nil); err == nil || !strings.Contains(err.Error(), "no lab is up: start one with vmlab up FILE") {
		t.Errorf("no lab: got %v", err)
	}
	serve(t, "a", newFakeLab())
	serve(t, "b", newFakeLab())
	if _, err := Dial(ctxT(t), "", nil); err == nil || !strings.Contains(err.Error(), "several labs are up (a, b): choose one with -lab NAME") {
		t.Errorf("two labs, no name: got %v", err)
	}
	if _, err := Dial(ctxT(t), "c", nil); err == nil || !strings.Contains(err.Error(), `lab "c" is not up; labs up: a, b`) {
		t.Errorf("a name not up: got %v", err)
	}
	if cl := dial(t, "b"); cl.Lab != "b" {
		t.Errorf("-lab b: connected to %q", cl.Lab)
	}
}

// TestLabSelectionPrefersLabsPeopleUse: with no -lab, the tests that
// vmlab run serves (each is a lab while it runs) do not stand in the way
// of the one lab a person started (up, repl): before, a test running
// anywhere made every vmlab shell without -lab fail.
func TestLabSelectionPrefersLabsPeopleUse(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", shortTemp(t))
	for _, l := range []struct{ name, command string }{{"a.test", "run"}, {"web", "up"}, {"b.test_x", "run"}} {
		s, err := Listen(l.name, LabInfo{Command: l.command}, newFakeLab(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	cl, err := Dial(ctxT(t), "", nil)
	if err != nil {
		t.Fatalf("one up lab among tests: %v", err)
	}
	defer cl.Close()
	if cl.Lab != "web" {
		t.Errorf("got lab %q, want web (the only one vmlab up serves)", cl.Lab)
	}
	s, err := Listen("other", LabInfo{Command: "repl"}, newFakeLab(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Dial(ctxT(t), "", nil); err == nil || !strings.Contains(err.Error(), "several labs are up (a.test, b.test_x, other, web)") {
		t.Errorf("an up and a repl lab: got %v, want several labs", err)
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{"web": true, "a.b-c_1": true, "": false, ".hidden": false, "-x": false, "a/b": false, strings.Repeat("x", 65): false} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", name, err, ok)
		}
	}
	for file, want := range map[string]string{"/x/web.star": "web", "my lab.star": "my_lab", ".star": "lab"} {
		if got := DefaultName(file); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", file, got, want)
		}
	}
}

// TestLockHeldByProbe: a lock held by no live vmlab (a probe cleaning up,
// a lab that has not written its pid yet) is waited for, briefly; one
// held for longer than that is reported as up.
func TestLockHeldByProbe(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", shortTemp(t))
	dir, err := RuntimeDir()
	if err != nil {
		t.Fatal(err)
	}
	probe, err := os.OpenFile(lockPath(dir, "web"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Listen("web", LabInfo{}, newFakeLab(), nil)
	// Not "already up": no lab holds it, and vmlab shell or down would not
	// reach one.
	var up *AlreadyUpError
	if errors.As(err, &up) || err == nil || !strings.Contains(err.Error(), "held by a process that is not a running lab") || time.Since(start) < transientHold {
		t.Errorf("a lock held for ever: got %v after %v, want one held by no lab after %v", err, time.Since(start), transientHold)
	}
	// Held briefly: Listen gets it once the probe lets go.
	done := make(chan error, 1)
	go func() {
		s, err := Listen("web", LabInfo{}, newFakeLab(), nil)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	probe.Close()
	if err := <-done; err != nil {
		t.Errorf("a lock a probe let go of: %v", err)
	}
}

// TestCleanName: a test's id becomes a lab name whatever the file is
// called (before: "my tests.test" could not be served at all).
func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"client_server.test": "client_server.test", "my tests.test_x": "my_tests.test_x", "-x.test": "x.test", "été.test": "__t__.test"} {
		if got := CleanName(in); got != want || CheckName(got) != nil {
			t.Errorf("CleanName(%q) = %q (check: %v), want %q", in, got, CheckName(got), want)
		}
	}
}
