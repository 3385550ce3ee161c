package keys

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		want string // the chord as JSON
	}{
		{"ctrl-alt-delete", `[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]`},
		{"ret", `[{"type":"qcode","data":"ret"}]`},
		{"A", `[{"type":"qcode","data":"shift"},{"type":"qcode","data":"a"}]`},
		{"-", `[{"type":"number","data":12}]`},
		{"\n", `[{"type":"qcode","data":"ret"}]`},
		{"shift-0x0C", `[{"type":"qcode","data":"shift"},{"type":"number","data":12}]`},
		{"f12", `[{"type":"qcode","data":"f12"}]`},
		{"kp_7", `[{"type":"qcode","data":"kp_7"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(c)
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ name, want string }{
		{"ctrl-alt-delet", `unknown key "delet" (did you mean delete`},
		{"retrun", `unknown key "retrun"`},
		{"ctrl--c", "an empty key"},
		{"", `key name ""`},
		{"0x100", "a scancode is 0x01 to 0xff"},
		{"é", `unknown key "é"`},
		// Other tools' names for keys get QEMU's code for them.
		{"return", `key name "return": unknown key "return": QEMU's key code for it is "ret"`},
		{"enter", `QEMU's key code for it is "ret"`},
		{"Return", `QEMU's key code for it is "ret"`},
		{"escape", `QEMU's key code for it is "esc"`},
		{"super", `QEMU's key code for it is "meta_l"`},
		{"win", `QEMU's key code for it is "meta_l"`},
		{"del", `QEMU's key code for it is "delete"`},
		{"ctrl-alt-del", `key name "ctrl-alt-del": unknown key "del": QEMU's key code for it is "delete" (write "ctrl-alt-delete")`},
		{"Ctrl-Alt-F1", `unknown key "Ctrl": QEMU's key code for it is "ctrl" (write "ctrl-alt-f1")`},
		{"F1", `QEMU's key code for it is "f1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.name)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCharsAll types every printable ASCII character: the table must have
// a key for each.
func TestCharsAll(t *testing.T) {
	var all strings.Builder
	for r := rune(' '); r <= '~'; r++ {
		all.WriteRune(r)
	}
	all.WriteString("\n\t")
	chords, err := Chars(all.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(chords), len(all.String()); got != want {
		t.Errorf("got %d chords, want %d", got, want)
	}
	if _, err := Chars("naïve"); err == nil || !strings.Contains(err.Error(), `'ï'`) {
		t.Errorf("got %v, want an error naming 'ï'", err)
	}
}
