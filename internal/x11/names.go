package x11

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Windows returns every window of every screen, in the order of the window
// tree: each root, then depth first each window before its children,
// siblings bottom to top in stacking order. The queries of one level of
// the tree go out together, so the walk costs one round trip a level.
// A window destroyed during the walk is left out.
func (c *Conn) Windows(ctx context.Context) ([]Window, error) {
	kids := map[Window][]Window{}
	var level []Window
	for _, s := range c.setup.Screens {
		level = append(level, s.Root)
	}
	roots := level
	for len(level) > 0 {
		seqs := make([]uint16, len(level))
		for i, w := range level {
			seqs[i] = c.queryTree(w)
		}
		var next []Window
		for i, w := range level {
			k, err := c.children(ctx, seqs[i])
			if xe := (*Error)(nil); errors.As(err, &xe) && xe.Code == 3 {
				continue // BadWindow: destroyed since its parent was read
			}
			if err != nil {
				return nil, fmt.Errorf("x11: read the window tree of %s: %w", c.display, err)
			}
			kids[w] = k
			next = append(next, k...)
		}
		level = next
	}
	var out []Window
	var walk func(w Window)
	walk = func(w Window) {
		out = append(out, w)
		for _, k := range kids[w] {
			walk(k)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out, nil
}

// atoms are the atoms Names reads, interned once a connection.
type atoms struct{ netWMName, utf8String, compoundText Atom }

// nameAtoms interns the atoms of window names that are not predefined,
// in one round trip.
func (c *Conn) nameAtoms(ctx context.Context) (atoms, error) {
	var a atoms
	ptrs := []*Atom{&a.netWMName, &a.utf8String, &a.compoundText}
	names := []string{"_NET_WM_NAME", "UTF8_STRING", "COMPOUND_TEXT"}
	seqs := make([]uint16, len(names))
	for i, n := range names {
		seqs[i] = c.internAtom(n, false)
	}
	for i, seq := range seqs {
		r, err := c.reply(ctx, seq)
		if err != nil {
			return a, fmt.Errorf("x11: intern atom %s: %w", names[i], err)
		}
		*ptrs[i] = Atom(le.Uint32(r[8:]))
	}
	return a, nil
}

// Names returns the names of windows, in their order, leaving out those
// without one: a window's _NET_WM_NAME (UTF8_STRING), else its WM_NAME
// (STRING, Latin-1; COMPOUND_TEXT, read as Latin-1 outside its escape
// sequences). A name's line breaks become spaces, so that names can be
// listed one a line. A window destroyed meanwhile is left out.
func (c *Conn) Names(ctx context.Context, windows []Window) ([]string, error) {
	if c.atoms == (atoms{}) {
		a, err := c.nameAtoms(ctx)
		if err != nil {
			return nil, err
		}
		c.atoms = a
	}
	seqs := make([]uint16, 0, 2*len(windows))
	for _, w := range windows {
		seqs = append(seqs, c.getProperty(w, c.atoms.netWMName), c.getProperty(w, AtomWMName))
	}
	var names []string
	for i := range windows {
		name := ""
		for _, seq := range seqs[2*i : 2*i+2] {
			p, err := c.property(ctx, seq)
			if xe := (*Error)(nil); errors.As(err, &xe) && xe.Code == 3 {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("x11: read the window names of %s: %w", c.display, err)
			}
			if name == "" {
				name = c.decodeName(p)
			}
		}
		if name != "" {
			names = append(names, strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(name))
		}
	}
	return names, nil
}

// decodeName turns a name property into a string; other types and
// formats than a name has are "".
func (c *Conn) decodeName(p Property) string {
	if p.Format != 8 {
		return ""
	}
	switch p.Type {
	case c.atoms.utf8String:
		return strings.ToValidUTF8(string(p.Value), "\uFFFD")
	case AtomString:
		return latin1(p.Value)
	case c.atoms.compoundText:
		return latin1(stripEscapes(p.Value))
	}
	return ""
}

func latin1(b []byte) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		s = utf8.AppendRune(s, rune(c))
	}
	return string(s)
}

// stripEscapes drops COMPOUND_TEXT's control sequences (ESC, its
// intermediate bytes and a final byte; CSI sequences), which switch
// character sets: a name in ISO 8859-1, the common case, is left as is.
func stripEscapes(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x1b:
			i++
			for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
				i++
			}
		case b[i] == 0x9b:
			i++
			for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
				i++
			}
		default:
			out = append(out, b[i])
		}
	}
	return out
}
