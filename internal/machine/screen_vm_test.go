package machine_test

import (
	"bytes"
	"image"
	"image/png"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMDisplay boots a machine with a display, types a command into the
// shell on tty1 and finds its effect (and again after the shell exits),
// takes a screenshot of the framebuffer console (a PNG of the display's
// size that is not blank), and resets the machine with ctrl-alt-delete.
func TestVMDisplay(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "screen", Display: true}, Dir: t.TempDir()})
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.SendChars(ctx, "echo hi > /tmp/typed\n", 0); err != nil {
		t.Fatal(err)
	}
	typed := time.Since(start)
	if err := m.WaitForFile(ctx, "/tmp/typed", 30*time.Second); err != nil {
		t.Fatalf("the typed command did not run: %v", err)
	}
	t.Logf("typing 21 keys took %v, and the file was there %v after the first", typed, time.Since(start))
	if out, err := m.Succeed(ctx, "cat /tmp/typed"); err != nil || out != "hi\n" {
		t.Errorf("got /tmp/typed %q, %v; want \"hi\\n\"", out, err)
	}
	// The picture is the DRM driver's framebuffer console, not VGA text.
	if out, err := m.Succeed(ctx, "cat /sys/class/graphics/fb0/name; grep -o 'console=tty0' /proc/cmdline"); err != nil || out != "bochs-drmdrmfb\nconsole=tty0\n" {
		t.Errorf("got framebuffer and console %q, %v; want bochs's and tty0", out, err)
	}
	start = time.Now()
	b, err := m.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot took %v (%d bytes)", time.Since(start), len(b))
	checkScreenshot(t, b)
	// A shell that exits is replaced, as getty would. Keys typed while
	// none has tty1 open are lost (as with getty): wait for the new one.
	old, err := m.Succeed(ctx, "ps -o sid= -t tty1 | head -n 1")
	if err != nil || strings.TrimSpace(old) == "" {
		t.Fatalf("got session %q, %v; want the shell's on tty1", old, err)
	}
	if err := m.SendChars(ctx, "exit\n", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitUntilSucceeds(ctx, "s=$(ps -o sid= -t tty1 | head -n 1); test -n \"$s\" && test $s != "+strings.TrimSpace(old), 30*time.Second); err != nil {
		t.Fatalf("no new shell on tty1 after exit: %v", err)
	}
	if err := m.SendChars(ctx, "echo again > /tmp/again\n", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForFile(ctx, "/tmp/again", 30*time.Second); err != nil {
		t.Fatalf("no new shell on tty1 after exit: %v", err)
	}
	out, err := m.SendMonitorCommand(ctx, "info status")
	if err != nil || !strings.Contains(out, "running") {
		t.Errorf("info status: got %q, %v; want it to say running", out, err)
	}
	// In fast mode nothing handles ctrl-alt-delete: the kernel resets the
	// machine at once, and QEMU (-no-reboot) exits.
	if err := m.SendKey(ctx, "ctrl-alt-delete", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForShutdown(ctx, 30*time.Second); err != nil {
		t.Errorf("after ctrl-alt-delete: %v", err)
	}
}

// checkScreenshot fails the test unless b is a PNG of at least 640x400
// with something drawn on it.
func checkScreenshot(t *testing.T, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	if got := img.Bounds().Size(); got.X < 640 || got.Y < 400 {
		t.Errorf("got a %v screenshot, want at least 640x400", got)
	}
	if oneColour(img) {
		t.Error("the screenshot is all one colour: nothing on the display")
	}
}

func oneColour(img image.Image) bool {
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	r0, g0, b0, _ := first.RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r != r0 || g != g0 || bl != b0 {
				return false
			}
		}
	}
	return true
}

// TestVMDisplaySystemd: a systemd machine with a display has vmlab's root
// shell on tty1 (vmlab-console.service) by the time the boot ends: keys
// typed at once reach it, its output is on tty1, and a shell that exits
// is replaced.
func TestVMDisplaySystemd(t *testing.T) {
	needsSystemd(t)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sdscreen", Init: spec.InitSystemd, Display: true}, Dir: t.TempDir()})
	ctx := t.Context()
	start := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot took %v", time.Since(start))
	start = time.Now()
	if err := m.SendChars(ctx, "echo typed $((6*7)) on tty1\n", 0); err != nil {
		t.Fatal(err)
	}
	// The line is matched from its start only: the kernel's console is on
	// tty1 too, and systemd's last boot messages (written to the kernel's
	// log until journald runs) can follow the output on the same line.
	if _, err := m.WaitUntilTTYMatches(ctx, 1, `(?m)^typed 42 on tty1`, 60*time.Second); err != nil {
		t.Fatalf("the typed command's output is not on tty1: %v", err)
	}
	t.Logf("the output was on tty1 %v after the first key", time.Since(start))
	if out, err := m.Succeed(ctx, "systemctl is-active vmlab-console.service; ps -o user=,tty= -p $(systemctl show -P MainPID vmlab-console.service)"); err != nil || strings.Join(strings.Fields(out), " ") != "active root tty1" {
		t.Errorf("got %q, %v; want vmlab-console.service active, its shell root's on tty1", out, err)
	}
	// What the shell's start held the agent (ordered after it): from its
	// start job to its exec.
	if out, err := m.Succeed(ctx, "systemctl show -P InactiveExitTimestampMonotonic -P ActiveEnterTimestampMonotonic vmlab-console.service"); err == nil {
		if f := strings.Fields(out); len(f) == 2 {
			a, _ := strconv.ParseInt(f[0], 10, 64)
			b, _ := strconv.ParseInt(f[1], 10, 64)
			t.Logf("vmlab-console.service took %v to start (the agent waited for it)", time.Duration(b-a)*time.Microsecond)
		}
	}
	old, err := m.Succeed(ctx, "systemctl show -P MainPID vmlab-console.service")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SendChars(ctx, "exit\n", 0); err != nil {
		t.Fatal(err)
	}
	// Keys typed while no shell has tty1 open are lost (as with getty):
	// wait for the new shell to hold it. Its main PID is known from the
	// fork, before systemd opened tty1 for it.
	newShell := "p=$(systemctl show -P MainPID vmlab-console.service); test \"$p\" != 0 && test \"$p\" != " + strings.TrimSpace(old) +
		" && test \"$(ps -o tty= -p $p)\" = tty1"
	if _, err := m.WaitUntilSucceeds(ctx, newShell, 30*time.Second); err != nil {
		t.Fatalf("no new shell on tty1 after exit: %v", err)
	}
	if err := m.SendChars(ctx, "echo again > /tmp/again\n", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForFile(ctx, "/tmp/again", 30*time.Second); err != nil {
		t.Fatalf("the new shell on tty1 did not run the typed command: %v", err)
	}
}
