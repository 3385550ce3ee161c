package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseScreen(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Screen
		err  bool
	}{
		{"", ScreenNone, false},
		{"none", ScreenNone, false},
		{"vnc", ScreenVNC, false},
		{"window", ScreenWindow, false},
		{"VNC", ScreenNone, true},
		{"gtk", ScreenNone, true},
	} {
		got, err := ParseScreen(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseScreen(%q): got %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), "want vnc, window or none") {
			t.Errorf("ParseScreen(%q): got %v, want an error naming the choices", c.in, err)
		}
	}
}

// TestScreenArgs: the screen adds VNC on the machine's socket or the GTK
// window to a machine with a display, and nothing else changes: the
// console stays QEMU's stdout, -nographic stays.
func TestScreenArgs(t *testing.T) {
	base := Config{Dir: "/run/m,1", Name: "desk", Display: true, Firmware: "/qboot.rom"}
	for _, c := range []struct {
		name    string
		display bool
		screen  Screen
		want    []string // consecutive arguments
		absent  []string
	}{
		{"vnc", true, ScreenVNC, []string{"-vnc", "unix:/run/m,,1/vnc.sock", "-name", "desk"}, []string{"-display"}},
		{"window", true, ScreenWindow, []string{"-display", "gtk,window-close=off", "-name", "desk"}, []string{"-vnc"}},
		{"none", true, ScreenNone, nil, []string{"-vnc", "-display", "-name"}},
		{"vnc without a display", false, ScreenVNC, nil, []string{"-vnc", "-display", "-name"}},
	} {
		cfg := base
		cfg.Display, cfg.Screen = c.display, c.screen
		args := cfg.Args()
		joined := strings.Join(args, " ")
		if c.want != nil && !strings.Contains(joined, strings.Join(c.want, " ")) {
			t.Errorf("%s: args lack %q:\n%s", c.name, c.want, joined)
		}
		for _, a := range c.absent {
			if slices.Contains(args, a) {
				t.Errorf("%s: args have %s:\n%s", c.name, a, joined)
			}
		}
		if got := slices.Contains(args, "/qboot.rom"); got != (c.screen != ScreenWindow || !c.display) {
			t.Errorf("%s: got firmware %v, want qboot except under a window (it hangs there)", c.name, got)
		}
		for _, keep := range []string{"-nographic", "stdio,id=console,signal=off", "chardev:console"} {
			if !slices.Contains(args, keep) {
				t.Errorf("%s: args lost %s:\n%s", c.name, keep, joined)
			}
		}
	}
}

// TestCheckWindow: no desktop session, and a QEMU whose display list has
// no gtk, are errors naming what to do; a session and gtk pass.
func TestCheckWindow(t *testing.T) {
	fake := func(displays string) string {
		p := filepath.Join(t.TempDir(), "qemu")
		script := "#!/bin/sh\n[ \"$1 $2\" = \"-display help\" ] || exit 2\nprintf 'Available display backend types:\\n" + displays + "'\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(vars ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(vars); i += 2 {
				if vars[i] == k {
					return vars[i+1]
				}
			}
			return ""
		}
	}
	withGTK, without := fake(`none\ngtk\nsdl\n`), fake(`none\ncurses\n`)
	for _, c := range []struct {
		name string
		bin  string
		env  func(string) string
		want error
		hint string
	}{
		{"no session", withGTK, env(), ErrNoDesktop, "-screen vnc"},
		{"no gtk", without, env("DISPLAY", ":0"), ErrNoGTK, "qemu-system-gui"},
		{"x11", withGTK, env("DISPLAY", ":0"), nil, ""},
		{"wayland", withGTK, env("WAYLAND_DISPLAY", "wayland-0"), nil, ""},
	} {
		err := CheckWindow(c.bin, c.env)
		if !errors.Is(err, c.want) || (err != nil && !strings.Contains(err.Error(), c.hint)) {
			t.Errorf("%s: got %v, want %v naming %q", c.name, err, c.want, c.hint)
		}
	}
}
