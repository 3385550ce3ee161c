package machine

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestChooseScreen: the option wins over $VMLAB_SCREEN, which counts when
// the option is empty; a bad value names where it came from; a window
// without a desktop session is an error before boot.
func TestChooseScreen(t *testing.T) {
	env := func(screen string) func(string) string {
		return func(k string) string {
			if k == "VMLAB_SCREEN" {
				return screen
			}
			return ""
		}
	}
	for _, c := range []struct {
		name, asked, env string
		want             qemu.Screen
		err              string
	}{
		{"neither", "", "", qemu.ScreenNone, ""},
		{"env", "", "vnc", qemu.ScreenVNC, ""},
		{"option wins", "none", "vnc", qemu.ScreenNone, ""},
		{"option", "vnc", "", qemu.ScreenVNC, ""},
		{"bad env", "", "vcn", qemu.ScreenNone, `VMLAB_SCREEN: unknown screen "vcn"`},
		{"bad option", "vcn", "vnc", qemu.ScreenNone, `screen: unknown screen "vcn"`},
		{"window without a session", "window", "", qemu.ScreenWindow, "neither DISPLAY nor WAYLAND_DISPLAY"},
	} {
		got, from, err := readScreen(c.asked, env(c.env))
		if err == nil {
			err = checkScreen(got, from, "/nonexistent/qemu", env(c.env))
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: got %q, %v; want an error with %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if err := checkScreen(qemu.ScreenWindow, "screen", "/nonexistent/qemu", env("")); !errors.Is(err, qemu.ErrNoDesktop) {
		t.Errorf("window without a session: got %v, want ErrNoDesktop", err)
	}
}

// TestQEMUConfigScreen: the boot's screen and the machine's name reach
// QEMU's configuration, and VNCSocket names the socket only for a machine
// with a display under "vnc".
func TestQEMUConfigScreen(t *testing.T) {
	for _, c := range []struct {
		screen  qemu.Screen
		display bool
		socket  bool
	}{
		{qemu.ScreenVNC, true, true},
		{qemu.ScreenVNC, false, false},
		{qemu.ScreenWindow, true, false},
		{qemu.ScreenNone, true, false},
	} {
		boot := &Boot{Kernel: &kernel.Kernel{Vmlinux: "/k"}, FS: "9p", Screen: c.screen}
		dir := t.TempDir()
		m := &Machine{cfg: Config{Machine: spec.Machine{Name: "desk", Display: c.display}, Boot: boot}, dir: dir}
		cfg := m.qemuConfig(nil, "", "/i")
		if cfg.Screen != c.screen || cfg.Name != "desk" {
			t.Errorf("%q, display %v: got screen %q, name %q; want %q, desk", c.screen, c.display, cfg.Screen, cfg.Name, c.screen)
		}
		want := ""
		if c.socket {
			want = filepath.Join(dir, "vnc.sock")
		}
		if got := m.VNCSocket(); got != want {
			t.Errorf("%q, display %v: got VNCSocket %q, want %q", c.screen, c.display, got, want)
		}
	}
}
