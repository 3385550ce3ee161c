// Package x11test runs an X server for tests: Xvfb, on a display number
// it picks itself, and stopped when the test ends.
package x11test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Xvfb starts Xvfb for the test, on a free display, and returns the
// display (":N") once the server accepts clients: Xvfb writes the number
// it chose to -displayfd when it is ready. Args are added to Xvfb's
// ("-auth", file). The test is skipped when Xvfb is not installed
// (scripts/deps installs it).
func Xvfb(t testing.TB, args ...string) string {
	t.Helper()
	return XvfbOn(t, "", args...)
}

// FreeDisplay returns a display number no server has (no lock file, no
// socket file), from 600 up, above where Xvfb -displayfd looks first, for
// a test that waits for a server it starts later.
func FreeDisplay(t testing.TB) string {
	for n := 600; n < 1000; n++ {
		_, lockErr := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n))
		_, sockErr := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n))
		if os.IsNotExist(lockErr) && os.IsNotExist(sockErr) {
			return ":" + strconv.Itoa(n)
		}
	}
	t.Fatal("no free X display number in 600..999")
	return ""
}

// XvfbOn is Xvfb on display (":N"), or on one Xvfb picks when display is
// empty.
func XvfbOn(t testing.TB, display string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Skip("Xvfb is not installed (apt-get install xvfb)")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base := []string{"-displayfd", "3", "-nolisten", "tcp", "-screen", "0", "640x480x24"}
	if display != "" {
		base = append([]string{display}, base...)
	}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.ExtraFiles = []*os.File{w}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("start Xvfb: %v", err)
	}
	w.Close()
	// SIGTERM, so that Xvfb removes its lock file and socket (a killed
	// one leaves both, and FreeDisplay would skip the number for good).
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(Deadline):
			cmd.Process.Kill()
			<-exited
		}
	})
	// The read ends at the number, or at EOF when Xvfb exits; a server
	// that hangs is ended by the test's own deadline.
	line, err := bufio.NewReader(r).ReadString('\n')
	n, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("start Xvfb: no display number (%q, %v): %s", line, err, stderr.String())
	}
	return ":" + strconv.Itoa(n)
}

// Cookie is a fixed MIT-MAGIC-COOKIE-1 for tests.
var Cookie = []byte("vmlab-test-cook!")

// AuthFile writes an Xauthority file holding Cookie for display number
// n (any display when n < 0) and returns its path.
func AuthFile(t testing.TB, n int) string {
	t.Helper()
	var b []byte
	field := func(s []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint16(b, 256) // FamilyLocal
	field([]byte("vmlab-test"))
	if n >= 0 {
		field([]byte(strconv.Itoa(n)))
	} else {
		field(nil)
	}
	field([]byte("MIT-MAGIC-COOKIE-1"))
	field(Cookie)
	p := filepath.Join(t.TempDir(), "Xauthority")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Deadline is how long a test waits for the server: 10 s, far more than
// the milliseconds a request takes, so that only a hung server reaches it.
const Deadline = 10 * time.Second
