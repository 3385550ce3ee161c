package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Screen is how a person on the host watches a machine's display live.
// The zero Screen shows it nowhere: tests look through screendump only.
type Screen string

const (
	// ScreenNone: no one watches (-nographic alone).
	ScreenNone Screen = ""
	// ScreenVNC serves the display over VNC on a unix socket in the
	// machine's directory (VNCSocket), which is private (mode 0700): no TCP
	// port, and nobody but the user who runs vmlab can type into the guest.
	ScreenVNC Screen = "vnc"
	// ScreenWindow opens a window of QEMU's GTK display on the host's
	// desktop session ($DISPLAY or $WAYLAND_DISPLAY).
	ScreenWindow Screen = "window"
)

// ParseScreen reads a screen's name: "vnc", "window", or "" and "none" for
// none.
func ParseScreen(s string) (Screen, error) {
	switch s {
	case "", "none":
		return ScreenNone, nil
	case "vnc":
		return ScreenVNC, nil
	case "window":
		return ScreenWindow, nil
	}
	return ScreenNone, fmt.Errorf("unknown screen %q (want vnc, window or none)", s)
}

// ErrNoGTK says QEMU cannot open a window: its GTK display is a module of
// a package of its own on Debian and Ubuntu.
var ErrNoGTK = errors.New("qemu has no GTK display to open a window with (Debian/Ubuntu: apt-get install qemu-system-gui; or watch over VNC: -screen vnc)")

// ErrNoDesktop says there is no desktop session to open a window on.
var ErrNoDesktop = errors.New("no desktop session to open a window on: neither DISPLAY nor WAYLAND_DISPLAY is set (watch over VNC instead: -screen vnc)")

// CheckWindow says whether bin (a QEMU executable) can open a window on
// the desktop session getenv names, before any machine boots: a missing
// session or GTK module would otherwise end each boot with QEMU's own
// "gtk initialization failed". It runs "bin -display help" (~80 ms), which
// lists only the displays whose module loads.
func CheckWindow(bin string, getenv func(string) string) error {
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return ErrNoDesktop
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-display", "help")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("list qemu's displays: %w", err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.TrimSpace(line) == "gtk" {
			return nil
		}
	}
	return ErrNoGTK
}

// VNCSocket is where a machine with ScreenVNC serves its display. QEMU
// creates it (and removes a stale one) when it starts.
func (c Config) VNCSocket() string { return filepath.Join(c.Dir, "vnc.sock") }

// window says QEMU opens a window for the display. Such a machine boots
// SeaBIOS, not Firmware: under QEMU 7.2's GTK display, qboot never reached
// the kernel (the vCPU spun at 100% and the serial port stayed silent for
// 25 s, under Xvfb; the same command line with -vnc, or with SeaBIOS,
// booted in 3-4 s).
func (c Config) window() bool { return c.Display && c.Screen == ScreenWindow }

// screenArgs returns the options that show the display to the host. QEMU
// keeps -nographic: it only means no display of QEMU's own (-nodefaults
// leaves no serial port or monitor for it to put on stdio), and a -vnc or
// -display given besides replaces that. -name titles the window and names
// the VNC desktop "QEMU (NAME)". A closed window does not end the machine
// (window-close=off): the test owns it.
func (c Config) screenArgs() []string {
	if !c.Display {
		return nil
	}
	var args []string
	switch c.Screen {
	case ScreenVNC:
		args = []string{"-vnc", "unix:" + escape(c.VNCSocket())}
	case ScreenWindow:
		args = []string{"-display", "gtk,window-close=off"}
	default:
		return nil
	}
	if c.Name != "" {
		args = append(args, "-name", escape(c.Name))
	}
	return args
}
