package script

import (
	"strings"
	"testing"
)

// TestTTYCallErrors: a terminal out of range or a regular expression Go
// cannot compile is refused when the file loads, before anything boots.
func TestTTYCallErrors(t *testing.T) {
	tests := []struct{ name, call, want string }{
		{"tty 0", "server.get_tty_text('0')",
			`call.star:3:23: get_tty_text(): tty wants a virtual terminal 1..63, such as "1" for tty1, got "0"`},
		{"tty 64 as a number", "server.get_tty_text(64)",
			"call.star:3:23: get_tty_text(): tty wants a virtual terminal 1..63, such as \"1\" for tty1, got 64"},
		{"not a number", "server.wait_until_tty_matches('one', 'login:')",
			`call.star:3:33: wait_until_tty_matches(): tty wants a virtual terminal 1..63, such as "1" for tty1, got "one"`},
		{"a float", "server.get_tty_text(1.0)",
			"get_tty_text(): tty wants a virtual terminal 1..63, such as \"1\" for tty1, got float"},
		{"bad regexp", "server.wait_until_tty_matches('1', 'login: (')",
			"call.star:3:38: wait_until_tty_matches(): regexp wants a regular expression (Go's regexp syntax), got \"login: (\": error parsing regexp: missing closing ): `login: (`"},
		{"lookahead", "server.wait_until_tty_matches('1', regexp = 'a(?=b)')",
			"Go's regexp has no lookarounds or backreferences"},
		{"backreference", `server.wait_until_tty_matches(2, r'(\w)\1')`,
			"Go's regexp has no lookarounds or backreferences"},
		{"wait_for_console_text's too", "server.wait_for_console_text('(?<!x)y')",
			"call.star:3:32: wait_for_console_text(): regex wants a regular expression (Go's regexp syntax), got \"(?<!x)y\""},
		{"missing regexp", "server.wait_until_tty_matches('1')",
			"call.star:3:10: wait_until_tty_matches() is missing required argument regexp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCall(t, tt.call)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
}

// TestTTYKind: NixOS's "1", a number, and "tty1" all name tty1.
func TestTTYKind(t *testing.T) {
	for _, call := range []string{"server.get_tty_text('1')", "server.get_tty_text(1)",
		"server.get_tty_text('tty1')", "server.get_tty_text(tty = '63')",
		"server.wait_until_tty_matches('1', 'login: $', timeout = 5)"} {
		if err := loadCall(t, call); err != nil {
			t.Errorf("%s: got %v, want no error", call, err)
		}
	}
}
