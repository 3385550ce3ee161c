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
