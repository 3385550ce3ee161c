package agent

import (
	"encoding/binary"
	"regexp"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// screen builds the vcsa and vcsu contents of a rows x cols terminal
// showing lines (shorter ones padded with blanks), as the kernel lays
// them out.
func screen(rows, cols int, lines ...string) (vcsa, vcsu []byte) {
	vcsa = []byte{byte(rows), byte(cols), 0, 0}
	for r := range rows {
		var row []rune
		if r < len(lines) {
			row = []rune(lines[r])
		}
		for c := range cols {
			ch := ' '
			if c < len(row) {
				ch = row[c]
			}
			b := byte(ch)
			if ch > 0x7f {
				b = 0xfe // a glyph of the console font, not the character
			}
			vcsa = append(vcsa, b, 0x07)
			vcsu = binary.NativeEndian.AppendUint32(vcsu, uint32(ch))
		}
	}
	return vcsa, vcsu
}

// TestDecodeVCSA: the text is NixOS's (`fold -w COLS /dev/vcsN`): every
// row at full width with its trailing blanks, rows joined by newlines.
func TestDecodeVCSA(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rows, cols int
		lines      []string
		noUnicode  bool
		want       string
	}{
		{name: "blank screen", rows: 3, cols: 4, want: "    \n    \n    "},
		{name: "a prompt keeps its trailing blank", rows: 2, cols: 16, lines: []string{"machine login: "},
			want: "machine login:  \n                "},
		{name: "blank lines kept", rows: 4, cols: 7,
			lines: []string{"one", "", "  three"}, want: "one    \n       \n  three\n       "},
		{name: "a full row is one line", rows: 2, cols: 4, lines: []string{"xxxx", "next"}, want: "xxxx\nnext"},
		{name: "unicode from vcsu", rows: 1, cols: 10, lines: []string{"héllo ■"}, want: "héllo ■   "},
		{name: "without vcsu, non-ASCII glyphs are ?", rows: 1, cols: 6, lines: []string{"héllo"}, noUnicode: true, want: "h?llo "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vcsa, vcsu := screen(tc.rows, tc.cols, tc.lines...)
			if tc.noUnicode {
				vcsu = nil
			}
			got, err := decodeVCSA(vcsa, vcsu)
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDecodeVCSALoginIdiom: NixOS tests wait for "login: " (with its
// blank) on a login prompt.
func TestDecodeVCSALoginIdiom(t *testing.T) {
	vcsa, vcsu := screen(25, 80, "", "Debian GNU/Linux 12 vm tty1", "", "vm login: ")
	got, err := decodeVCSA(vcsa, vcsu)
	if err != nil || !regexp.MustCompile("login: ").MatchString(got) {
		t.Errorf("got %q, %v; want it to match %q", got, err, "login: ")
	}
	if n := strings.Count(got, "\n"); n != 24 {
		t.Errorf("got %d newlines, want 24 between 25 rows", n)
	}
}

func TestDecodeVCSAResizedBetweenReads(t *testing.T) {
	vcsa, _ := screen(1, 5, "after")
	_, vcsu := screen(3, 10, "before")
	got, err := decodeVCSA(vcsa, vcsu)
	if err != nil || got != "after" {
		t.Errorf("got %q, %v; want %q from vcsa alone", got, err, "after")
	}
}

func TestDecodeVCSAMalformed(t *testing.T) {
	vcsa, _ := screen(25, 80)
	for _, tc := range []struct {
		name string
		vcsa []byte
		want string
	}{
		{"empty", nil, "shorter than the 4-byte header"},
		{"header only", vcsa[:4], "want 4004"},
		{"cut short", vcsa[:len(vcsa)-1], "for 25x80 cells"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeVCSA(tc.vcsa, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestTTYRequestErrors: a terminal out of range and a pattern Go cannot
// compile are the request's error, before any device is opened.
func TestTTYRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  func() agentproto.Result
		want string
	}{
		{"tty 0", func() agentproto.Result { return ttyText(0) }, "read tty 0: no such virtual terminal (1..63)"},
		{"tty 64", func() agentproto.Result { return ttyText(64) }, "read tty 64: no such virtual terminal (1..63)"},
		{"wait on tty 0", func() agentproto.Result {
			return waitTTY(t.Context(), agentproto.Wait{Kind: agentproto.WaitTTY, VT: 0, Regex: "x"})
		}, "read tty 0: no such virtual terminal"},
		{"bad pattern", func() agentproto.Result {
			return waitTTY(t.Context(), agentproto.Wait{Kind: agentproto.WaitTTY, VT: 1, Regex: "("})
		}, "wait for tty 1: error parsing regexp: missing closing )"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := tc.res(); !strings.Contains(res.Error, tc.want) {
				t.Errorf("got %+v, want an error containing %q", res, tc.want)
			}
		})
	}
}
