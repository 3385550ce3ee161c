package script

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/ocr"
	"github.com/vmlab/vmlab/internal/spec"
)

// The machines of the screen checks: screen has a display, plain is
// declared without one.
const screenDecl = "screen = machine(display = True)\nplain = machine(display = False)"

// TestScreenCallErrors: Load refuses a screen method on a machine declared
// with display = False, an unknown key name and a character without a key, at the
// place at fault, before anything boots.
func TestScreenCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"screenshot without a display", "plain.screenshot('x')",
			"call.star:4:9: screenshot(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"send_chars without a display", "plain.send_chars('ls\\n')",
			"call.star:4:9: send_chars(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"unknown key", "screen.send_key('ctrl-alt-delet')",
			`call.star:4:19: send_key(): key wants a known key name, got "ctrl-alt-delet": unknown key "delet" (did you mean delete?) (keys are QEMU's key codes: ret, spc, esc, ctrl, alt, shift, f1, a, 1, ...)`},
		{"character without a key", "screen.send_chars('naïve')",
			`call.star:4:21: send_chars(): chars wants characters a US keyboard types, got "naïve": character 'ï' (at byte 2) has no key on a US keyboard`},
		{"screenshot escaping the output", "screen.screenshot('../x')",
			`call.star:4:21: screenshot(): filename wants a relative file name without .., ending in .png or without an extension, got "../x"`},
		{"screenshot over a capture", "screen.screenshot('vlan1.pcap')",
			`call.star:4:21: screenshot(): filename wants a relative file name without .., ending in .png or without an extension, got "vlan1.pcap"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCallOn(t, screenDecl, tt.call)
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), "testdata/"+tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
	// Methods that need no display pass on a machine without one.
	for _, call := range []string{"plain.send_monitor_command('info status')", "plain.send_console('x\\n')", "screen.send_key('A')"} {
		if err := loadCallOn(t, screenDecl, call); err != nil {
			t.Errorf("%s: got %v, want no error", call, err)
		}
	}
}

// TestScreenCallRefusedAtRunTime: a screen method on a machine without a
// display that Load cannot see is refused when it runs, before it boots
// anything (the run has no lab: booting would panic).
func TestScreenCallRefusedAtRunTime(t *testing.T) {
	f, err := Load("testdata/call.star", []byte(screenDecl+"\ndef test():\n  (lambda m: m.screenshot('x'))(plain)\n"))
	if err != nil {
		t.Fatalf("Load: got %v, want no error", err)
	}
	r := &run{ctx: t.Context(), file: f, test: "test", rep: &events{}}
	thread := &starlark.Thread{Name: "test"}
	thread.SetLocal(runKey, r)
	_, err = starlark.Call(thread, f.globals["test"], nil, nil)
	want := "screenshot(): machine plain has no display: declare it with machine(display = True)"
	if msg, _ := splitError(err); err == nil || msg != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestOCRCallErrors: Load refuses an OCR method on a machine declared with
// display = False and a literal pattern that does not compile, before anything
// boots.
func TestOCRCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"get_screen_text without a display", "plain.get_screen_text()",
			"call.star:4:9: get_screen_text(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"get_screen_text_variants without a display", "plain.get_screen_text_variants()",
			"call.star:4:9: get_screen_text_variants(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"wait_for_text without a display", "plain.wait_for_text('login:')",
			"call.star:4:9: wait_for_text(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"bad regex", "screen.wait_for_text('login: (')",
			"call.star:4:24: wait_for_text(): regex wants a regular expression (Go's regexp syntax), got \"login: (\": error parsing regexp: missing closing ): `login: (`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCallOn(t, screenDecl, tt.call)
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), "testdata/"+tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
	if err := loadCallOn(t, screenDecl, "screen.wait_for_text('login: +$', timeout = 30)"); err != nil {
		t.Errorf("got %v, want no error", err)
	}
}

// TestNixOSKeyCalls: NixOS's send_key(key, delay=0.01, log=True) and
// send_chars(chars, delay=0.01) calls load unchanged, by position and by
// keyword; the delay arrives as a duration, log=False keeps send_key off
// the timeline, and a negative delay is refused when the file loads.
func TestNixOSKeyCalls(t *testing.T) {
	tests := []struct {
		call  string
		delay time.Duration
		quiet bool
	}{
		{"screen.send_key('ret')", 0, false},
		{"screen.send_key('ret', 0.01)", 10 * time.Millisecond, false},
		{"screen.send_key('ret', None, False)", 0, true},
		{"screen.send_key('ctrl-alt-delete', delay = 0.5, log = True)", 500 * time.Millisecond, false},
		{"screen.send_key(key = 'a', log = False)", 0, true},
		{"screen.send_chars('ls\\n')", 0, false},
		{"screen.send_chars('ls\\n', 0.01)", 10 * time.Millisecond, false},
		{"screen.send_chars('ls\\n', delay = '50ms')", 50 * time.Millisecond, false},
		{"screen.send_chars('ls\\n', delay = None)", 0, false},
	}
	for _, tt := range tests {
		if err := loadCallOn(t, screenDecl, tt.call); err != nil {
			t.Errorf("Load: %s: got %v, want no error", tt.call, err)
			continue
		}
		name := tt.call[len("screen."):strings.Index(tt.call, "(")]
		meth := methodByName[name]
		var c call
		fn := starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, argv starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return starlark.None, meth.unpack(argv, kwargs, "testdata", &c.args)
		})
		expr := "f" + tt.call[strings.Index(tt.call, "("):]
		if _, err := starlark.EvalOptions(fileOptions, &starlark.Thread{}, "call", expr, starlark.StringDict{"f": fn}); err != nil {
			t.Errorf("call: %s: got %v, want no error", tt.call, err)
			continue
		}
		if c.keyDelay != tt.delay || meth.quiet(&c) != tt.quiet {
			t.Errorf("%s: got delay %v, off the timeline %v; want %v, %v", tt.call, c.keyDelay, meth.quiet(&c), tt.delay, tt.quiet)
		}
	}
	for call, want := range map[string]string{
		"screen.send_chars('x', delay = -1)":  `call.star:4:34: send_chars(): delay wants a pause after each key: a duration such as "50ms" or a number of seconds (None: no pause), got -1`,
		"screen.send_chars('x', log = False)": `call.star:4:26: send_chars() has no parameter "log"`,
		"screen.send_key('a', log = 0)":       `call.star:4:30: send_key(): log wants True or False, got int`,
	} {
		err := loadCallOn(t, screenDecl, call)
		if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), "testdata/"+want) {
			t.Errorf("%s: got %v, want %q", call, err, want)
		}
	}
}

// TestOCRWithoutTesseract: on a host without tesseract, Load refuses an
// OCR call at its place, naming the package to install, before anything
// boots; the other screen methods need no tesseract.
func TestOCRWithoutTesseract(t *testing.T) {
	old := ocrInstalled
	t.Cleanup(func() { ocrInstalled = old })
	ocrInstalled = func() error { return ocr.ErrNotInstalled }
	for call, col := range map[string]int{"screen.wait_for_text('login:')": 10, "screen.get_screen_text()": 10, "screen.get_screen_text_variants()": 10} {
		name := call[len("screen."):strings.Index(call, "(")]
		want := fmt.Sprintf("testdata/call.star:4:%d: %s(): tesseract is not installed: install the package tesseract-ocr (apt-get install tesseract-ocr, or run scripts/deps)", col, name)
		err := loadCallOn(t, screenDecl, call)
		if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), want) {
			t.Errorf("%s: got %v, want %q", call, err, want)
		}
	}
	if err := loadCallOn(t, screenDecl, "screen.screenshot('x')"); err != nil {
		t.Errorf("screenshot without tesseract: got %v, want no error", err)
	}
	// The real check: tesseract is looked up on PATH.
	t.Setenv("PATH", t.TempDir())
	ocrInstalled = ocr.Available
	if err := loadCallOn(t, screenDecl, "screen.wait_for_text('login:')"); err == nil || !strings.Contains(err.Error(), ocr.ErrNotInstalled.Error()) {
		t.Errorf("with an empty PATH: got %v, want %q", err, ocr.ErrNotInstalled)
	}
}

// TestImpliedDisplay: a machine whose declaration leaves display out gets
// one when the file calls a screen method on it by name, in a test or a
// helper; not for methods that need none, nor for a call Load cannot see
// (which is refused when it runs: TestScreenCallRefusedAtRunTime); and an
// implied display is checked as a declared one.
func TestImpliedDisplay(t *testing.T) {
	fixtureHost(t)
	src := `desk = machine()
kiosk = machine()
serial = machine()
other = machine()

def type_on(m):
    m.send_chars("ls\\n")

def show():
    kiosk.wait_for_text("login:")

def test():
    desk.send_key("ret")
    show()
    serial.send_console("x\\n")
    serial.send_monitor_command("info status")
    type_on(other)
`
	f, err := Load("testdata/implied.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"desk": true, "kiosk": true, "serial": false, "other": false}
	for _, s := range f.Specs {
		if s.Display != want[s.Name] || f.machines[s.Name].spec.Display != want[s.Name] {
			t.Errorf("machine %s: got display %v (the value's %v), want %v", s.Name, s.Display, f.machines[s.Name].spec.Display, want[s.Name])
		}
	}
	// A kernel without the display's driver refuses the implied display
	// at the machine's declaration.
	h := checkHost()
	h.Modules = t.TempDir()
	if err := os.WriteFile(filepath.Join(h.Modules, "modules.dep"), []byte("kernel/drivers/net/dummy.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := checkHost
	checkHost = func() spec.Host { return h }
	t.Cleanup(func() { checkHost = old })
	_, err = Load("testdata/implied.star", []byte("desk = machine()\n\ndef test():\n    desk.screenshot('x')\n"))
	if err == nil || !strings.Contains(err.Error(), "testdata/implied.star:1:15: machine desk: display: the kernel the machines boot") ||
		!strings.Contains(err.Error(), "CONFIG_DRM_BOCHS (the machine has a display because the file calls desk.screenshot() at testdata/implied.star:4:10)") {
		t.Errorf("implied display without bochs: got %v, want it refused at desk's declaration", err)
	}
}
