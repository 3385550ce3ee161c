package x11

import (
	"context"
	"encoding/binary"
	"fmt"
)

// The core requests vmlab uses, by the protocol's "Requests" section.
// Those with a reply return after it; those without are buffered, and
// their errors are returned by Sync.

// Opcodes.
const (
	opCreateWindow           = 1
	opChangeWindowAttributes = 2
	opDestroyWindow          = 4
	opMapWindow              = 8
	opQueryTree              = 15
	opInternAtom             = 16
	opChangeProperty         = 18
	opGetProperty            = 20
	opGetInputFocus          = 43
)

var le = binary.LittleEndian

// InternAtom returns the atom named name, creating it unless onlyIfExists
// (then a name no client interned is 0).
func (c *Conn) InternAtom(ctx context.Context, name string, onlyIfExists bool) (Atom, error) {
	r, err := c.reply(ctx, c.internAtom(name, onlyIfExists))
	if err != nil {
		return 0, fmt.Errorf("x11: intern atom %s: %w", name, err)
	}
	return Atom(le.Uint32(r[8:])), nil
}

// internAtom buffers an InternAtom.
func (c *Conn) internAtom(name string, onlyIfExists bool) uint16 {
	var only byte
	if onlyIfExists {
		only = 1
	}
	body := le.AppendUint16(nil, uint16(len(name)))
	body = append(body, 0, 0)
	body = append(body, name...)
	return c.request(opInternAtom, only, body)
}

// queryTree buffers a QueryTree of w.
func (c *Conn) queryTree(w Window) uint16 {
	return c.request(opQueryTree, 0, le.AppendUint32(nil, uint32(w)))
}

// children reads the reply to a QueryTree: w's children, bottom to top in
// stacking order.
func (c *Conn) children(ctx context.Context, seq uint16) ([]Window, error) {
	r, err := c.reply(ctx, seq)
	if err != nil {
		return nil, err
	}
	n := int(le.Uint16(r[16:]))
	if len(r) < 32+4*n {
		return nil, fmt.Errorf("x11: QueryTree reply cut short")
	}
	kids := make([]Window, n)
	for i := range kids {
		kids[i] = Window(le.Uint32(r[32+4*i:]))
	}
	return kids, nil
}

// Property is a property's value: its type, its format (8, 16 or 32 bits
// an item) and its bytes.
type Property struct {
	Type   Atom
	Format uint8
	Value  []byte
}

// maxPropertyWords bounds what GetProperty reads of a value: 64 KiB, more
// than any window name.
const maxPropertyWords = 16384

// getProperty buffers a GetProperty of any type.
func (c *Conn) getProperty(w Window, prop Atom) uint16 {
	body := le.AppendUint32(nil, uint32(w))
	body = le.AppendUint32(body, uint32(prop))
	body = le.AppendUint32(body, 0) // AnyPropertyType
	body = le.AppendUint32(body, 0)
	body = le.AppendUint32(body, maxPropertyWords)
	return c.request(opGetProperty, 0, body)
}

// property reads the reply to a GetProperty. A window without the
// property has Type 0.
func (c *Conn) property(ctx context.Context, seq uint16) (Property, error) {
	r, err := c.reply(ctx, seq)
	if err != nil {
		return Property{}, err
	}
	p := Property{Format: r[1], Type: Atom(le.Uint32(r[8:]))}
	n := int(le.Uint32(r[16:])) * int(p.Format) / 8
	if len(r) < 32+n {
		return Property{}, fmt.Errorf("x11: GetProperty reply cut short")
	}
	p.Value = r[32 : 32+n]
	return p, nil
}

// SelectInput sets the events this client gets from window w (a mask of
// the *Mask constants; other clients' selections are their own).
func (c *Conn) SelectInput(w Window, mask uint32) {
	body := le.AppendUint32(nil, uint32(w))
	body = le.AppendUint32(body, 1<<11) // the value mask: event-mask
	body = le.AppendUint32(body, mask)
	c.request(opChangeWindowAttributes, 0, body)
}

// CreateWindow creates an InputOutput window of the parent's depth and
// visual and returns its id.
func (c *Conn) CreateWindow(parent Window, x, y int16, width, height uint16) Window {
	w := c.NewID()
	body := le.AppendUint32(nil, uint32(w))
	body = le.AppendUint32(body, uint32(parent))
	body = le.AppendUint16(body, uint16(x))
	body = le.AppendUint16(body, uint16(y))
	body = le.AppendUint16(body, width)
	body = le.AppendUint16(body, height)
	body = le.AppendUint16(body, 0) // border width
	body = le.AppendUint16(body, 1) // class InputOutput
	body = le.AppendUint32(body, 0) // visual CopyFromParent
	body = le.AppendUint32(body, 0) // no attributes
	c.request(opCreateWindow, 0, body)
	return w
}

// MapWindow maps window w.
func (c *Conn) MapWindow(w Window) {
	c.request(opMapWindow, 0, le.AppendUint32(nil, uint32(w)))
}

// DestroyWindow destroys window w and its subwindows.
func (c *Conn) DestroyWindow(w Window) {
	c.request(opDestroyWindow, 0, le.AppendUint32(nil, uint32(w)))
}

// ChangeProperty replaces property prop of window w with value, 8-bit
// items of type typ.
func (c *Conn) ChangeProperty(w Window, prop, typ Atom, value []byte) {
	body := le.AppendUint32(nil, uint32(w))
	body = le.AppendUint32(body, uint32(prop))
	body = le.AppendUint32(body, uint32(typ))
	body = append(body, 8, 0, 0, 0)
	body = le.AppendUint32(body, uint32(len(value)))
	body = append(body, value...)
	c.request(opChangeProperty, 0, body) // mode Replace
}

// Sync sends the buffered requests and waits until the server has handled
// them (a GetInputFocus round trip). It returns the first error of a
// request without a reply since the last Sync.
func (c *Conn) Sync(ctx context.Context) error {
	if _, err := c.reply(ctx, c.request(opGetInputFocus, 0, nil)); err != nil {
		return err
	}
	err := c.voidErr
	c.voidErr = nil
	return err
}
