package machine_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
	"github.com/vmlab/vmlab/internal/x11"
	"github.com/vmlab/vmlab/internal/x11/x11test"
)

// screenMachine boots a machine with a display under screen and returns
// it with the lines its Logf wrote while it booted.
func watchedMachine(t *testing.T, screen qemu.Screen, init string) (*machine.Machine, []string) {
	t.Helper()
	boot := *vmtest.Boot(t)
	boot.Screen = screen
	var mu sync.Mutex
	var logged []string
	m, err := machine.New(machine.Config{
		Machine: spec.Machine{Name: "desk", Init: init, Display: true}, Boot: &boot, Dir: t.TempDir(),
		Logf: func(format string, args ...any) {
			t.Logf(format, args...)
			mu.Lock()
			defer mu.Unlock()
			logged = append(logged, strings.TrimSpace(fmt.Sprintf(format, args...)))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return m, append([]string(nil), logged...)
}

// TestVMScreenVNC boots a machine whose screen is served over VNC: the
// socket is in the machine's private directory and only its owner can
// connect, its path is told, the server speaks RFB (version, security
// types, a desktop named after the machine), keys sent as RFB key events
// reach the shell on tty1, and the console is still the serial port's.
func TestVMScreenVNC(t *testing.T) { testScreenVNC(t, "") }

// TestVMScreenVNCSystemd: the same under systemd, whose shell on tty1 is
// vmlab-console.service's.
func TestVMScreenVNCSystemd(t *testing.T) {
	needsSystemd(t)
	testScreenVNC(t, spec.InitSystemd)
}

func testScreenVNC(t *testing.T, init string) {
	m, logged := watchedMachine(t, qemu.ScreenVNC, init)
	sock := m.VNCSocket()
	if sock == "" || !slices.Contains(logged, "desk: screen over VNC: vncviewer "+sock) {
		t.Errorf("got log %q, want the line naming the socket %q", logged, sock)
	}
	checkPrivate(t, sock)
	c, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		t.Fatalf("connect to the VNC socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	name := rfbHandshake(t, c)
	if name != "QEMU (desk)" {
		t.Errorf("got desktop name %q, want \"QEMU (desk)\"", name)
	}
	// "touch /tmp/vnc" and Return, as X keysyms: Latin-1 characters are
	// their own keysym.
	var keys []byte
	for _, sym := range keysyms("touch /tmp/vnc") {
		keys = append(keys, keyEvent(sym, true)...)
		keys = append(keys, keyEvent(sym, false)...)
	}
	keys = append(keys, keyEvent(0xff0d, true)...) // Return
	keys = append(keys, keyEvent(0xff0d, false)...)
	if _, err := c.Write(keys); err != nil {
		t.Fatalf("send key events: %v", err)
	}
	if err := m.WaitForFile(t.Context(), "/tmp/vnc", 30*time.Second); err != nil {
		t.Errorf("the command typed over VNC did not run: %v", err)
	}
	if _, err := m.Succeed(t.Context(), "echo on-the-serial-port > /dev/ttyS0"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitForConsoleText(t.Context(), "on-the-serial-port", 30*time.Second); err != nil {
		t.Errorf("the serial port's line is not on the console: %v", err)
	}
}

// checkPrivate fails unless the socket is the test's and neither it nor
// its directory lets anyone else in.
func checkPrivate(t *testing.T, sock string) {
	t.Helper()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("stat the VNC socket: %v", err)
	}
	dir, err := os.Stat(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || int(st.Uid) != os.Getuid() {
		t.Errorf("got %s mode %v owner %d, want a socket of uid %d", sock, fi.Mode(), st.Uid, os.Getuid())
	}
	if dir.Mode().Perm() != 0o700 {
		t.Errorf("got the socket's directory mode %v, want 0700: others could connect", dir.Mode().Perm())
	}
}

// rfbHandshake completes RFB's opening (RFC 6143, 7.1-7.3) with security
// type None and returns the desktop's name.
func rfbHandshake(t *testing.T, c net.Conn) string {
	t.Helper()
	r := bufio.NewReader(c)
	version := make([]byte, 12)
	if _, err := io.ReadFull(r, version); err != nil {
		t.Fatalf("read the server's version: %v", err)
	}
	if !strings.HasPrefix(string(version), "RFB 003.00") {
		t.Fatalf("got version line %q, want RFB 003.00x", version)
	}
	c.Write([]byte("RFB 003.008\n"))
	n, err := r.ReadByte()
	if err != nil || n == 0 {
		t.Fatalf("read the security types: got %d types, %v", n, err)
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(r, types); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(types), "\x01") {
		t.Fatalf("got security types %v, want None (1): the socket's permissions are the access control", types)
	}
	c.Write([]byte{1, 1}) // None; then ClientInit, shared
	var result uint32
	if err := binary.Read(r, binary.BigEndian, &result); err != nil || result != 0 {
		t.Fatalf("got security result %d, %v; want 0 (OK)", result, err)
	}
	var init struct {
		Width, Height uint16
		Format        [16]byte
		NameLen       uint32
	}
	if err := binary.Read(r, binary.BigEndian, &init); err != nil {
		t.Fatalf("read ServerInit: %v", err)
	}
	name := make([]byte, init.NameLen)
	if _, err := io.ReadFull(r, name); err != nil {
		t.Fatal(err)
	}
	t.Logf("VNC: %s, %dx%d, security types %v", version[:11], init.Width, init.Height, types)
	return string(name)
}

func keysyms(s string) []uint32 {
	var out []uint32
	for _, r := range s {
		out = append(out, uint32(r))
	}
	return out
}

// keyEvent is RFB's KeyEvent message (RFC 6143, 7.5.4).
func keyEvent(sym uint32, down bool) []byte {
	b := []byte{4, 0, 0, 0}
	if down {
		b[1] = 1
	}
	return binary.BigEndian.AppendUint32(b, sym)
}

// TestVMScreenWindow boots a machine whose screen is QEMU's GTK window on
// an Xvfb the test starts, finds the window by its title, and checks that
// screenshots, keys and OCR work as without it. It is skipped without
// Xvfb or QEMU's GTK display (scripts/deps installs both).
func TestVMScreenWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	display := x11test.Xvfb(t)
	t.Setenv("DISPLAY", display)
	t.Setenv("WAYLAND_DISPLAY", "")
	if err := qemu.CheckWindow(vmtest.Boot(t).QEMU, os.Getenv); errors.Is(err, qemu.ErrNoGTK) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	m, logged := watchedMachine(t, qemu.ScreenWindow, "")
	if want := "desk: screen in a window titled \"QEMU (desk)\" on DISPLAY " + display; !slices.Contains(logged, want) {
		t.Errorf("got log %q, want %q", logged, want)
	}
	// QEMU made its window before the guest ran, long before the agent's
	// hello ended Start.
	ctx := t.Context()
	c, err := x11.Dial(ctx, display, x11.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ws, err := c.Windows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names, err := c.Names(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "QEMU (desk)") {
		t.Errorf("got window names %q, want \"QEMU (desk)\"", names)
	}

	b, err := m.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	if got := img.Bounds().Size(); got.X != 1280 || got.Y != 800 {
		t.Errorf("got a %v screenshot, want the guest's 1280x800, not the window's", got)
	}
	if err := m.SendChars(ctx, "echo WINDOW $((6*7)) DONE > /tmp/w; cat /tmp/w\n", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForFile(ctx, "/tmp/w", 30*time.Second); err != nil {
		t.Fatalf("the typed command did not run: %v", err)
	}
	if _, err := exec.LookPath("tesseract"); err != nil {
		t.Skip("tesseract is not installed: OCR not checked")
	}
	if err := m.WaitForText(ctx, `WINDOW 42 DONE`, 60*time.Second); err != nil {
		t.Error(err)
	}
}
