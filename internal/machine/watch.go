package machine

import (
	"os"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/qemu"
)

// VNCSocket returns the unix socket on which the machine's display is
// served over VNC (Boot.Screen "vnc", a machine declared with a display),
// in its private directory; "" when it is served nowhere. The socket is
// there while QEMU runs.
func (m *Machine) VNCSocket() string {
	if !m.cfg.Display || m.cfg.Boot == nil || m.cfg.Boot.Screen != qemu.ScreenVNC {
		return ""
	}
	return filepath.Join(m.dir, "vnc.sock")
}

// tellScreen says, once QEMU runs, where the person running the test can
// watch the display: the VNC socket and how to view it, or the window.
func (m *Machine) tellScreen(cfg qemu.Config) {
	if !cfg.Display {
		return
	}
	switch cfg.Screen {
	case qemu.ScreenVNC:
		m.logf("screen over VNC: vncviewer %s", cfg.VNCSocket())
	case qemu.ScreenWindow:
		m.logf("screen in a window titled \"QEMU (%s)\" on %s", m.cfg.Name, desktop())
	}
}

// desktop names the session QEMU's window opens on: GTK tries Wayland
// first when both are set.
func desktop() string {
	if d := os.Getenv("WAYLAND_DISPLAY"); d != "" {
		return "WAYLAND_DISPLAY " + d
	}
	return "DISPLAY " + os.Getenv("DISPLAY")
}
