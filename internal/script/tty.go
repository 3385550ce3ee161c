package script

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// The TTY text methods' parameters (get_tty_text, wait_until_tty_matches):
// NixOS names them tty and regexp.
var (
	pTTY    = param{"tty", ttyKind, nil, func(a *args) any { return &a.tty }}
	pRegexp = param{"regexp", regexKind, nil, func(a *args) any { return &a.regex }}
)

// ttyKind is a virtual terminal as NixOS names it, "1" for tty1, or the
// number itself.
var ttyKind = &kind{fmt.Sprintf(`a virtual terminal 1..%d, such as "1" for tty1`, agentproto.MaxVT),
	func(k *kind, v starlark.Value, _ string) (any, error) {
		var n int64
		switch v := v.(type) {
		case starlark.String:
			s := strings.TrimPrefix(string(v), "tty")
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, k.wrong(v, true)
			}
			n = i
		case starlark.Int:
			i, ok := v.Int64()
			if !ok {
				return nil, k.wrong(v, true)
			}
			n = i
		default:
			return nil, k.wrong(v, false)
		}
		if n < 1 || n > agentproto.MaxVT {
			return nil, k.wrong(v, true)
		}
		return int(n), nil
	}}

// regexKind is a regular expression in Go's syntax, compiled when the
// file loads (for a literal) so a bad one costs no boot. Python's
// lookarounds and backreferences are named as what Go's lacks.
var regexKind = &kind{"a regular expression (Go's regexp syntax)", func(k *kind, v starlark.Value, _ string) (any, error) {
	s, ok := v.(starlark.String)
	if !ok {
		return nil, k.wrong(v, false)
	}
	if _, err := regexp.Compile(string(s)); err != nil {
		hint := ""
		if pythonOnlyRegex.MatchString(string(s)) {
			hint = " (Go's regexp has no lookarounds or backreferences: match more and check the text, or use two waits)"
		}
		return nil, fmt.Errorf("wants %s, got %s: %v%s", k.want, s.String(), err, hint)
	}
	return string(s), nil
}}

// pythonOnlyRegex finds what Python's re takes and Go's regexp does not:
// lookarounds ((?=, (?!, (?<=, (?<!), backreferences (\1, (?P=name)).
var pythonOnlyRegex = regexp.MustCompile(`\(\?(=|!|<=|<!|P=)|\\[1-9]`)

// getTTYText is get_tty_text(tty): the terminal's text.
func getTTYText(c *call) (starlark.Value, error) {
	return str(c.mm().GetTTYText(c.r.ctx, c.tty))
}

// waitUntilTTYMatches is wait_until_tty_matches(tty, regexp,
// timeout=None): the terminal's text once it matches.
func waitUntilTTYMatches(c *call) (starlark.Value, error) {
	return str(c.mm().WaitUntilTTYMatches(c.r.ctx, c.tty, c.regex, c.timeout))
}
