package machine_test

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// xenv is what a client of the test's X server needs.
const xenv = "DISPLAY=:0 XAUTHORITY=/tmp/xauth"

// TestVMX runs Xvfb (the host root's) as a fast-mode service with a cookie
// (-auth), and xmessage's window on it: wait_for_x returns once the
// server is up, wait_for_window finds the window as soon as it is made and
// again when it is renamed, get_window_names lists it, and a pattern that
// never matches times out with the names.
func TestVMX(t *testing.T) {
	needsX(t)
	checkX(t, vmtest.Machine(t, machine.Config{Machine: xMachine("x", ""), Dir: t.TempDir()}))
}

// TestVMXSystemd: the same in a machine whose init is systemd, where Xvfb
// is a unit and the agent serves as systemd's unit.
func TestVMXSystemd(t *testing.T) {
	needsX(t)
	needsSystemd(t)
	checkX(t, vmtest.Machine(t, machine.Config{Machine: xMachine("xsd", spec.InitSystemd), Dir: t.TempDir()}))
}

func needsX(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	// The guest's root is the host's: the guest has what the host has.
	for _, c := range []string{"Xvfb", "xauth", "xmessage", "xprop", "xev", "stdbuf"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is not installed (scripts/deps installs xvfb, xauth and x11-utils)", c)
		}
	}
}

// xMachine has a display and runs Xvfb on :0 as a service, with a cookie.
func xMachine(name, init string) spec.Machine {
	xvfb := "xauth -f /tmp/xauth add :0 . 00112233445566778899aabbccddeeff && " +
		"exec Xvfb :0 -auth /tmp/xauth -nolisten tcp -screen 0 800x600x16"
	return spec.Machine{Name: name, Display: true, Init: init, Services: []agentproto.Service{{Name: "xvfb", Command: xvfb}}}
}

func checkX(t *testing.T, m *machine.Machine) {
	ctx := t.Context()
	start := time.Now()
	if err := m.WaitForX(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("X was up %v after the boot started", time.Since(start))
	if names, err := m.WindowNames(ctx); err != nil || len(names) != 0 {
		t.Errorf("before any window: got %q, %v; want no names", names, err)
	}

	// waitFor starts a WaitForWindow and returns when it returned.
	waitFor := func(pattern string) chan time.Time {
		done := make(chan time.Time, 1)
		go func() {
			if err := m.WaitForWindow(ctx, pattern, 60*time.Second); err != nil {
				t.Error(err)
			}
			done <- time.Now()
		}()
		return done
	}
	// When the window is made: xev, another client of the server, tells
	// the console when it sees the server's CreateNotify, and the host
	// sees the console line on a path as short as the wait's answer's.
	// xev dies of SIGPIPE once grep has its line: under the commands'
	// pipefail and errexit, "|| :" keeps the shell going to the echo.
	created := make(chan time.Time, 1)
	go func() {
		if _, err := m.WaitForConsoleText(ctx, "vmlab-created", 60*time.Second); err != nil {
			t.Error(err)
		}
		created <- time.Now()
	}()
	done := waitFor("^vmlab-hello$")
	if _, err := m.Succeed(ctx, "{ "+xenv+" stdbuf -oL xev -root -event substructure | grep -q -m1 CreateNotify || :; echo vmlab-created >/dev/console; } >/dev/null 2>&1 &"); err != nil {
		t.Fatal(err)
	}
	// xev asks for the events right after it connects; xmessage takes
	// seconds to make its window under TCG.
	if _, err := m.WaitUntilSucceeds(ctx, `ss -xp | grep -q '"xev"'`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Succeed(ctx, xenv+" xmessage -name vmlab-hello 'hello from X' >/dev/null 2>&1 &"); err != nil {
		t.Fatal(err)
	}
	found, made := <-done, <-created
	t.Logf("wait_for_window returned %v after the console said the window was made", found.Sub(made))
	if late := found.Sub(made); late > time.Second {
		t.Errorf("wait_for_window returned %v after the window was made, want well under a second", late)
	}

	names, err := m.WindowNames(ctx)
	if err != nil || !slices.Contains(names, "vmlab-hello") {
		t.Errorf("got %q, %v; want vmlab-hello among the names", names, err)
	}
	var took []time.Duration
	for range 5 {
		s := time.Now()
		if _, err := m.WindowNames(ctx); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(s))
	}
	slices.Sort(took)
	t.Logf("get_window_names round trip: median %v of %v", took[2], took)

	done = waitFor("^vmlab-renamed$")
	if _, err := m.Succeed(ctx, xenv+" xprop -name vmlab-hello -set WM_NAME vmlab-renamed"); err != nil {
		t.Fatal(err)
	}
	renamed := time.Now()
	late := (<-done).Sub(renamed)
	// The rename is done when xprop exits; the wait may have returned
	// before the command's answer reached the host. A wait that polled
	// every second would take ~500 ms on average.
	t.Logf("wait_for_window returned %v after the renaming command returned", late)
	if late > time.Second {
		t.Errorf("wait_for_window returned %v after the rename, want well under a second", late)
	}

	err = m.WaitForWindow(ctx, "^never$", 2*time.Second)
	te := (*machine.TimeoutError)(nil)
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "vmlab-renamed") || !strings.Contains(err.Error(), "on :0") ||
		!strings.Contains(err.Error(), "the window names last read") || !strings.HasPrefix(err.Error(), m.Name()+": ") {
		t.Errorf("got %v, want a *TimeoutError naming the machine, the display and the window names", err)
	}
}
