package script

import (
	"slices"
	"strings"
	"testing"
)

// TestXCallErrors: Load refuses an X method on a machine without a display
// and a literal pattern that does not compile (with the hint for Python's
// syntax), before anything boots; the NixOS calls load.
func TestXCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"wait_for_x without a display", "plain.wait_for_x()",
			"call.star:4:9: wait_for_x(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"wait_for_window without a display", "plain.wait_for_window('xterm')",
			"call.star:4:9: wait_for_window(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"get_window_names without a display", "plain.get_window_names()",
			"call.star:4:9: get_window_names(): machine plain has no display: it is declared with display = False; make it True, or leave display out (a screen method gives the machine a display)"},
		{"bad regex", "screen.wait_for_window('xterm (')",
			"call.star:4:26: wait_for_window(): regexp wants a regular expression (Go's regexp syntax), got \"xterm (\": error parsing regexp: missing closing ): `xterm (`"},
		{"python regex", "screen.wait_for_window('(?!x)term')",
			"call.star:4:26: wait_for_window(): regexp wants a regular expression (Go's regexp syntax), got \"(?!x)term\": error parsing regexp: invalid or unsupported Perl syntax: `(?!` (Go's regexp has no lookarounds or backreferences: match more and check the text, or use two waits)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCallOn(t, screenDecl, tt.call)
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), "testdata/"+tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
	for _, call := range []string{"screen.wait_for_x(timeout = 30)", "screen.wait_for_window('xterm', 60)", "screen.get_window_names()"} {
		if err := loadCallOn(t, screenDecl, call); err != nil {
			t.Errorf("%s: got %v, want no error", call, err)
		}
	}
}
