// Package keys owns the names of keyboard keys as tests write them: the
// NixOS test driver's, which are QEMU's key codes ("ret", "ctrl",
// "f1") joined by '-' for a chord ("ctrl-alt-delete"), a scancode in hex
// ("0x0c") for a key without a name, and single characters that send_chars
// types ("A" is "shift-a"). Parse turns a name into the keys QMP's send-key
// presses together; Chars turns text into one chord per character.
package keys

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmlab/vmlab/internal/near"
)

// Key is one key of a chord as QMP's send-key takes it: a QKeyCode name
// (Type "qcode") or a scancode (Type "number").
type Key struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Chord is keys pressed together, in order, then released.
type Chord []Key

// codes are QEMU's QKeyCode names (qapi/ui.json), the names HMP's sendkey
// and QMP's send-key know.
var codes = func() []string {
	var c []string
	c = append(c, strings.Fields(`unmapped shift shift_r alt alt_r ctrl ctrl_r menu esc
		minus equal backspace tab bracket_left bracket_right ret semicolon
		apostrophe grave_accent backslash comma dot slash asterisk spc caps_lock
		num_lock scroll_lock kp_divide kp_multiply kp_subtract kp_add kp_enter
		kp_decimal sysrq less home pgup pgdn end left up down right insert delete
		stop again props undo front copy open paste find cut lf help meta_l meta_r
		compose pause ro hiragana henkan yen muhenkan katakanahiragana kp_comma
		kp_equals power sleep wake audionext audioprev audiostop audioplay
		audiomute volumeup volumedown mediaselect mail calculator computer
		ac_home ac_back ac_forward ac_refresh ac_bookmarks lang1 lang2`)...)
	for r := 'a'; r <= 'z'; r++ {
		c = append(c, string(r))
	}
	for i := range 10 {
		c = append(c, strconv.Itoa(i), "kp_"+strconv.Itoa(i))
	}
	for i := 1; i <= 24; i++ {
		c = append(c, "f"+strconv.Itoa(i))
	}
	return c
}()

// aliases are names other tools give keys, with QEMU's key code for
// each. They are suggested in an error, not accepted: NixOS's driver hands
// key names to QEMU's sendkey, which knows only its codes, so a test that
// used them would not run there.
var aliases = map[string]string{
	"return": "ret", "enter": "ret", "escape": "esc", "del": "delete",
	"super": "meta_l", "win": "meta_l", "windows": "meta_l", "meta": "meta_l",
	"cmd": "meta_l", "command": "meta_l", "space": "spc", "control": "ctrl",
	"ins": "insert", "pageup": "pgup", "page_up": "pgup", "pagedown": "pgdn",
	"page_down": "pgdn", "bksp": "backspace", "capslock": "caps_lock",
	"print": "sysrq", "printscreen": "sysrq", "prtsc": "sysrq", "altgr": "alt_r",
	"option": "alt", "apps": "menu",
}

// meant returns the key code a test most likely meant by an unknown key:
// an alias's code, or the code in lower case ("F1", "Ctrl"); "" for none.
func meant(part string) string {
	lower := strings.ToLower(part)
	if code, ok := aliases[lower]; ok {
		return code
	}
	if lower != part && slices.Contains(codes, lower) {
		return lower
	}
	return ""
}

// chordMeant returns ` (write "ctrl-alt-delete")` for a chord such as
// "ctrl-alt-del", each unknown key replaced by the code it meant, or ""
// when the chord is one key.
func chordMeant(name string) string {
	parts := strings.Split(name, "-")
	if len(parts) < 2 {
		return ""
	}
	for i, p := range parts {
		if _, err := parseKey(p); err != nil {
			if code := meant(p); code != "" {
				parts[i] = code
			}
		}
	}
	return fmt.Sprintf(" (write %q)", strings.Join(parts, "-"))
}

// chars maps the characters send_chars types to key names, on a US
// layout: what a character needs beyond its own key (shift) and the keys
// whose code name is not the character. The hex codes are the PC
// scancodes the NixOS driver uses for them.
var chars = map[rune]string{
	'!': "shift-0x02", '@': "shift-0x03", '#': "shift-0x04", '$': "shift-0x05",
	'%': "shift-0x06", '^': "shift-0x07", '&': "shift-0x08", '*': "shift-0x09",
	'(': "shift-0x0a", ')': "shift-0x0b", '_': "shift-0x0c", '+': "shift-0x0d",
	'{': "shift-0x1a", '}': "shift-0x1b", ':': "shift-0x27", '"': "shift-0x28",
	'~': "shift-0x29", '|': "shift-0x2b", '<': "shift-0x33", '>': "shift-0x34",
	'?': "shift-0x35",
	'-': "0x0c", '=': "0x0d", '[': "0x1a", ']': "0x1b", ';': "0x27", '\'': "0x28",
	'`': "0x29", '\\': "0x2b", ',': "0x33", '.': "0x34", '/': "0x35",
	' ': "spc", '\n': "ret", '\t': "tab",
}

// forChar returns the key name of one character, and whether it has one:
// a lowercase letter or digit is its own name, an uppercase one is
// shift and the letter.
func forChar(r rune) (string, bool) {
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return string(r), true
	case r >= 'A' && r <= 'Z':
		return "shift-" + string(r-'A'+'a'), true
	}
	name, ok := chars[r]
	return name, ok
}

// Parse returns the chord a key name means: one character ("A", "?", "\n")
// as send_chars types it, else key codes joined by '-' ("ctrl-alt-delete",
// "shift-0x0c"). An unknown name is an error naming the near ones.
func Parse(name string) (Chord, error) {
	if r := []rune(name); len(r) == 1 {
		if n, ok := forChar(r[0]); ok {
			name = n
		}
	}
	if name == "" {
		return nil, fmt.Errorf("key name \"\": want a key such as \"ret\" or \"ctrl-alt-delete\"")
	}
	var chord Chord
	for _, part := range strings.Split(name, "-") {
		k, err := parseKey(part)
		if code := meant(part); err != nil && code != "" {
			return nil, fmt.Errorf("key name %q: unknown key %q: QEMU's key code for it is %q%s", name, part, code, chordMeant(name))
		}
		if err != nil {
			return nil, fmt.Errorf("key name %q: %w", name, err)
		}
		chord = append(chord, k)
	}
	return chord, nil
}

func parseKey(part string) (Key, error) {
	if hex, ok := strings.CutPrefix(part, "0x"); ok {
		n, err := strconv.ParseUint(hex, 16, 8)
		if err != nil || n == 0 {
			return Key{}, fmt.Errorf("unknown key %q: a scancode is 0x01 to 0xff", part)
		}
		return Key{Type: "number", Data: int(n)}, nil
	}
	if slices.Contains(codes, part) {
		return Key{Type: "qcode", Data: part}, nil
	}
	if part == "" {
		return Key{}, fmt.Errorf("an empty key between '-': name keys such as \"ctrl-alt-delete\"")
	}
	return Key{}, fmt.Errorf("unknown key %q%s (keys are QEMU's key codes: ret, spc, esc, ctrl, alt, shift, f1, a, 1, ...)", part, near.Mean(near.Names(part, codes, 3)))
}

// Chars returns the chords that type text, one per character. A character
// with no key on a US keyboard is an error naming it.
func Chars(text string) ([]Chord, error) {
	var out []Chord
	for i, r := range text {
		name, ok := forChar(r)
		if !ok {
			return nil, fmt.Errorf("character %q (at byte %d) has no key on a US keyboard", r, i)
		}
		c, err := Parse(name)
		if err != nil {
			return nil, err // the table is wrong: TestCharsAll catches it
		}
		out = append(out, c)
	}
	return out, nil
}
