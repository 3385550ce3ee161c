package report

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// vt is a terminal for the tests, cols columns wide and as tall as what
// was written (nothing scrolls off): it moves the cursor for \r, \n and
// ESC[nA, erases for ESC[K and ESC[J, ignores colours (ESC[...m), and
// records every line that would wrap and every sequence it does not know.
type vt struct {
	cols     int
	rows     [][]rune
	row, col int
	errs     []string
}

func newVT(cols int) *vt { return &vt{cols: cols, rows: [][]rune{nil}} }

func (v *vt) Write(p []byte) (int, error) {
	s := string(p)
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i += v.escape(s[i:])
			continue
		}
		r := []rune(s[i:])[0]
		i += len(string(r))
		switch r {
		case '\r':
			v.col = 0
		case '\n':
			v.col = 0 // a terminal's ONLCR
			v.row++
			if v.row == len(v.rows) {
				v.rows = append(v.rows, nil)
			}
		default:
			if v.col >= v.cols {
				v.errs = append(v.errs, fmt.Sprintf("line %d wraps: %q", v.row, string(v.rows[v.row])+string(r)))
			}
			line := v.rows[v.row]
			for len(line) <= v.col {
				line = append(line, ' ')
			}
			line[v.col] = r
			v.rows[v.row] = line
			v.col++
		}
	}
	return len(p), nil
}

// escape handles the CSI sequence at the start of s and returns its
// length.
func (v *vt) escape(s string) int {
	if len(s) < 2 || s[1] != '[' {
		v.errs = append(v.errs, fmt.Sprintf("unknown escape %q", s[:min(len(s), 4)]))
		return 1
	}
	end := strings.IndexAny(s[2:], "ABCDHJKm")
	if end < 0 {
		v.errs = append(v.errs, fmt.Sprintf("unknown escape %q", s[:min(len(s), 6)]))
		return 1
	}
	arg, final := s[2:2+end], s[2+end]
	switch final {
	case 'A':
		n, err := strconv.Atoi(arg)
		if arg == "" {
			n, err = 1, nil
		}
		if err != nil || n > v.row {
			v.errs = append(v.errs, fmt.Sprintf("cursor up %q from row %d", arg, v.row))
		}
		v.row = max(0, v.row-n)
	case 'K':
		if len(v.rows[v.row]) > v.col {
			v.rows[v.row] = v.rows[v.row][:v.col]
		}
	case 'J':
		if len(v.rows[v.row]) > v.col {
			v.rows[v.row] = v.rows[v.row][:v.col]
		}
		v.rows = v.rows[:v.row+1]
	case 'm':
	default:
		v.errs = append(v.errs, fmt.Sprintf("unexpected escape %q", s[:3+end]))
	}
	return 3 + end
}

// String is the screen, a line each, the trailing empty line left out.
func (v *vt) String() string {
	ls := make([]string, len(v.rows))
	for i, r := range v.rows {
		ls[i] = string(r)
	}
	return strings.TrimSuffix(strings.Join(ls, "\n"), "\n")
}

// bottom is the screen's last n lines.
func (v *vt) bottom(n int) []string {
	ls := strings.Split(v.String(), "\n")
	return ls[max(0, len(ls)-n):]
}

// check fails t for lines that wrapped and sequences vt does not know.
func (v *vt) check(t *testing.T) {
	t.Helper()
	for _, e := range v.errs {
		t.Error(e)
	}
	v.errs = nil
}

// screen renders what a terminal as wide as any line shows for out.
func screen(out string) string {
	v := newVT(1 << 20)
	v.Write([]byte(out))
	return v.String()
}
