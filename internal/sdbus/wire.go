package sdbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

// The D-Bus wire format ("Marshaling (Wire Format)" in the D-Bus
// specification): every value is aligned to its type's size relative to the
// start of the message, strings are length-prefixed and NUL-terminated,
// arrays carry their byte length. Values map to Go as:
//
//	y byte    b bool    n int16   q uint16  i int32   u uint32
//	x int64   t uint64  d float64 s string  o ObjectPath  g Signature
//	v Variant           a… []any            a{…} map[any]any   (…) []any
//
// Encoding also takes a string for o and g, and any slice or map for arrays
// (a map's keys are written sorted, so the bytes are reproducible). Unix
// file descriptors (h) are not supported: nothing vmlab asks systemd for
// carries one.

// ObjectPath is a D-Bus object path ("/org/freedesktop/systemd1").
type ObjectPath string

// Signature is a D-Bus type signature ("a{sv}").
type Signature string

// Variant is a value together with its type: D-Bus's v.
type Variant struct {
	Sig   Signature
	Value any
}

// Limits from the specification: an array's data is at most 64 MiB, and
// types nest at most 32 arrays and 32 structs deep.
const (
	maxArray = 64 << 20
	maxDepth = 64
)

var errShort = errors.New("message truncated")

func alignment(c byte) int {
	switch c {
	case 'y', 'g', 'v':
		return 1
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 's', 'o', 'a':
		return 4
	}
	return 8 // x t d ( {
}

// splitType returns the first complete type of sig and the rest.
func splitType(sig string) (first, rest string, err error) {
	if sig == "" {
		return "", "", errors.New("empty signature")
	}
	end, err := typeEnd(sig, 0, 0)
	if err != nil {
		return "", "", fmt.Errorf("signature %q: %w", sig, err)
	}
	return sig[:end], sig[end:], nil
}

// typeEnd is the index just past the complete type starting at sig[i].
func typeEnd(sig string, i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errors.New("nested too deep")
	}
	if i >= len(sig) {
		return 0, errors.New("incomplete type")
	}
	switch c := sig[i]; c {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g', 'v':
		return i + 1, nil
	case 'a':
		if i+1 < len(sig) && sig[i+1] == '{' {
			return dictEntryEnd(sig, i+1, depth+1)
		}
		return typeEnd(sig, i+1, depth+1)
	case '(':
		j := i + 1
		for j < len(sig) && sig[j] != ')' {
			var err error
			if j, err = typeEnd(sig, j, depth+1); err != nil {
				return 0, err
			}
		}
		if j >= len(sig) || j == i+1 {
			return 0, errors.New("bad struct")
		}
		return j + 1, nil
	default:
		return 0, fmt.Errorf("unsupported type %q", c)
	}
}

// dictEntryEnd checks "{KV}" at sig[i]: K a basic type, V any complete type.
func dictEntryEnd(sig string, i, depth int) (int, error) {
	if i+1 >= len(sig) || !strings.ContainsRune("ybnqiuxtdsog", rune(sig[i+1])) {
		return 0, errors.New("dict key is not a basic type")
	}
	j, err := typeEnd(sig, i+2, depth)
	if err != nil {
		return 0, err
	}
	if j >= len(sig) || sig[j] != '}' {
		return 0, errors.New("bad dict entry")
	}
	return j + 1, nil
}

// types splits a signature into its complete types.
func types(sig string) ([]string, error) {
	var list []string
	for sig != "" {
		first, rest, err := splitType(sig)
		if err != nil {
			return nil, err
		}
		list, sig = append(list, first), rest
	}
	return list, nil
}

// encoder appends values in little-endian byte order, aligned relative to
// the start of b (the start of a message, or of a body, which starts on an
// 8-byte boundary).
type encoder struct {
	b []byte
}

func (e *encoder) pad(n int) {
	for len(e.b)%n != 0 {
		e.b = append(e.b, 0)
	}
}

// values encodes args as the types of sig, one after the other.
func (e *encoder) values(sig string, args []any) error {
	list, err := types(sig)
	if err != nil {
		return err
	}
	if len(list) != len(args) {
		return fmt.Errorf("signature %q has %d values, got %d", sig, len(list), len(args))
	}
	for i, t := range list {
		if err := e.value(t, args[i]); err != nil {
			return err
		}
	}
	return nil
}

// value encodes v as the single complete type t.
func (e *encoder) value(t string, v any) error {
	e.pad(alignment(t[0]))
	le := binary.LittleEndian
	bad := func() error { return fmt.Errorf("cannot encode %T as %q", v, t) }
	switch t[0] {
	case 'y':
		x, ok := v.(byte)
		if !ok {
			return bad()
		}
		e.b = append(e.b, x)
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		var u uint32
		if x {
			u = 1
		}
		e.b = le.AppendUint32(e.b, u)
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint16(e.b, uint16(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint16(e.b, x)
	case 'i':
		x, ok := v.(int32)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint32(e.b, uint32(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint32(e.b, x)
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint64(e.b, uint64(x))
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint64(e.b, x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		e.b = le.AppendUint64(e.b, math.Float64bits(x))
	case 's', 'o', 'g':
		return e.str(t[0], v)
	case 'v':
		x, ok := v.(Variant)
		if !ok {
			return bad()
		}
		if first, rest, err := splitType(string(x.Sig)); err != nil || rest != "" {
			return fmt.Errorf("variant signature %q is not one complete type", x.Sig)
		} else if err := e.str('g', x.Sig); err != nil {
			return err
		} else {
			return e.value(first, x.Value)
		}
	case 'a':
		return e.array(t[1:], v)
	case '(':
		fields, ok := v.([]any)
		if !ok {
			return bad()
		}
		return e.values(t[1:len(t)-1], fields)
	default:
		return bad()
	}
	return nil
}

// str encodes a string, object path (c 'o') or signature (c 'g').
func (e *encoder) str(c byte, v any) error {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case ObjectPath:
		s = string(x)
	case Signature:
		s = string(x)
	default:
		return fmt.Errorf("cannot encode %T as %q", v, c)
	}
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return fmt.Errorf("cannot encode %q: strings are UTF-8 without NUL", s)
	}
	if c == 'g' {
		if len(s) > 255 {
			return fmt.Errorf("signature %q is longer than 255 bytes", s)
		}
		e.b = append(e.b, byte(len(s)))
	} else {
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(s)))
	}
	e.b = append(append(e.b, s...), 0)
	return nil
}

// array encodes a slice as an array of elem, or a map as an array of dict
// entries when elem is "{KV}".
func (e *encoder) array(elem string, v any) error {
	rv := reflect.ValueOf(v)
	e.b = binary.LittleEndian.AppendUint32(e.b, 0) // the length, set below
	at := len(e.b) - 4
	e.pad(alignment(elem[0])) // padding before the first element is not counted
	start := len(e.b)
	switch {
	case elem[0] == '{' && rv.Kind() == reflect.Map:
		k, val, err := splitType(elem[1 : len(elem)-1])
		if err != nil {
			return err
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, key := range keys {
			e.pad(8)
			if err := e.value(k, key.Interface()); err != nil {
				return err
			}
			if err := e.value(val, rv.MapIndex(key).Interface()); err != nil {
				return err
			}
		}
	case elem[0] != '{' && rv.Kind() == reflect.Slice:
		for i := range rv.Len() {
			if err := e.value(elem, rv.Index(i).Interface()); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("cannot encode %T as %q", v, "a"+elem)
	}
	n := len(e.b) - start
	if n > maxArray {
		return fmt.Errorf("array of %d bytes is over the limit of %d", n, maxArray)
	}
	binary.LittleEndian.PutUint32(e.b[at:], uint32(n))
	return nil
}

// decoder reads values from b at off, aligned relative to the start of b, in
// the byte order the message declares. Malformed input is an error, never a
// panic: the peer's bytes are not trusted.
type decoder struct {
	b     []byte
	off   int
	order binary.ByteOrder
	depth int
}

func (d *decoder) align(n int) error {
	next := (d.off + n - 1) / n * n
	if next > len(d.b) {
		return errShort
	}
	d.off = next
	return nil
}

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || d.off+n > len(d.b) {
		return nil, errShort
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

// values decodes the types of sig, one after the other.
func (d *decoder) values(sig string) ([]any, error) {
	list, err := types(sig)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(list))
	for _, t := range list {
		v, err := d.value(t)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// value decodes the single complete type t.
func (d *decoder) value(t string) (any, error) {
	if err := d.align(alignment(t[0])); err != nil {
		return nil, err
	}
	switch t[0] {
	case 'y':
		p, err := d.take(1)
		if err != nil {
			return nil, err
		}
		return p[0], nil
	case 'b':
		u, err := d.uint32()
		if err != nil {
			return nil, err
		}
		if u > 1 {
			return nil, fmt.Errorf("boolean %d is neither 0 nor 1", u)
		}
		return u == 1, nil
	case 'n', 'q':
		p, err := d.take(2)
		if err != nil {
			return nil, err
		}
		if t[0] == 'n' {
			return int16(d.order.Uint16(p)), nil
		}
		return d.order.Uint16(p), nil
	case 'i':
		u, err := d.uint32()
		return int32(u), err
	case 'u':
		return d.uint32()
	case 'x', 't', 'd':
		p, err := d.take(8)
		if err != nil {
			return nil, err
		}
		u := d.order.Uint64(p)
		switch t[0] {
		case 'x':
			return int64(u), nil
		case 'd':
			return math.Float64frombits(u), nil
		}
		return u, nil
	case 's', 'o':
		s, err := d.str()
		if t[0] == 'o' {
			return ObjectPath(s), err
		}
		return s, err
	case 'g':
		s, err := d.sig()
		return Signature(s), err
	case 'v':
		return d.variant()
	case 'a':
		return d.array(t[1:])
	case '(':
		return d.nested(func() (any, error) { return d.values(t[1 : len(t)-1]) })
	}
	return nil, fmt.Errorf("unsupported type %q", t)
}

func (d *decoder) uint32() (uint32, error) {
	p, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return d.order.Uint32(p), nil
}

func (d *decoder) str() (string, error) {
	n, err := d.uint32()
	if err != nil {
		return "", err
	}
	if n > maxArray {
		return "", errShort
	}
	p, err := d.take(int(n) + 1)
	if err != nil {
		return "", err
	}
	if p[n] != 0 {
		return "", errors.New("string not NUL-terminated")
	}
	return string(p[:n]), nil
}

func (d *decoder) sig() (string, error) {
	p, err := d.take(1)
	if err != nil {
		return "", err
	}
	n := int(p[0])
	if p, err = d.take(n + 1); err != nil {
		return "", err
	}
	if p[n] != 0 {
		return "", errors.New("signature not NUL-terminated")
	}
	return string(p[:n]), nil
}

func (d *decoder) variant() (any, error) {
	s, err := d.sig()
	if err != nil {
		return nil, err
	}
	first, rest, err := splitType(s)
	if err != nil || rest != "" {
		return nil, fmt.Errorf("variant signature %q is not one complete type", s)
	}
	return d.nested(func() (any, error) {
		v, err := d.value(first)
		return Variant{Sig: Signature(s), Value: v}, err
	})
}

// nested bounds the depth of containers, which the peer controls through
// variants.
func (d *decoder) nested(f func() (any, error)) (any, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, errors.New("values nested too deep")
	}
	defer func() { d.depth-- }()
	return f()
}

func (d *decoder) array(elem string) (any, error) {
	n, err := d.uint32()
	if err != nil {
		return nil, err
	}
	if n > maxArray {
		return nil, fmt.Errorf("array of %d bytes is over the limit", n)
	}
	if err := d.align(alignment(elem[0])); err != nil {
		return nil, err
	}
	end := d.off + int(n)
	if end > len(d.b) {
		return nil, errShort
	}
	return d.nested(func() (any, error) {
		if elem[0] == '{' {
			return d.dict(elem, end)
		}
		list := []any{}
		for d.off < end {
			v, err := d.value(elem)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, d.endAt(end)
	})
}

func (d *decoder) dict(elem string, end int) (any, error) {
	k, val, err := splitType(elem[1 : len(elem)-1])
	if err != nil {
		return nil, err
	}
	m := map[any]any{}
	for d.off < end {
		if err := d.align(8); err != nil {
			return nil, err
		}
		key, err := d.value(k)
		if err != nil {
			return nil, err
		}
		v, err := d.value(val)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, d.endAt(end)
}

func (d *decoder) endAt(end int) error {
	if d.off != end {
		return errors.New("array elements overrun the array's length")
	}
	return nil
}
