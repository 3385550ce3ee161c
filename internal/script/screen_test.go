package script

import (
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// The machines of the screen checks: screen has a display, plain has none.
const screenDecl = "screen = machine(display = True)\nplain = machine()"

// TestScreenCallErrors: Load refuses a screen method on a machine without a
// display, an unknown key name and a character without a key, at the
// place at fault, before anything boots.
func TestScreenCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"screenshot without a display", "plain.screenshot('x')",
			"call.star:4:9: screenshot(): machine plain has no display: declare it with machine(display = True)"},
		{"send_chars without a display", "plain.send_chars('ls\\n')",
			"call.star:4:9: send_chars(): machine plain has no display: declare it with machine(display = True)"},
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

// TestOCRCallErrors: Load refuses an OCR method on a machine without a
// display and a literal pattern that does not compile, before anything
// boots.
func TestOCRCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"get_screen_text without a display", "plain.get_screen_text()",
			"call.star:4:9: get_screen_text(): machine plain has no display: declare it with machine(display = True)"},
		{"get_screen_text_variants without a display", "plain.get_screen_text_variants()",
			"call.star:4:9: get_screen_text_variants(): machine plain has no display: declare it with machine(display = True)"},
		{"wait_for_text without a display", "plain.wait_for_text('login:')",
			"call.star:4:9: wait_for_text(): machine plain has no display: declare it with machine(display = True)"},
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
