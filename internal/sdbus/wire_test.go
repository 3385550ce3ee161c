package sdbus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		sig  string
		v    any
	}{
		{"byte", "y", byte(7)},
		{"true", "b", true},
		{"false", "b", false},
		{"int16", "n", int16(-2)},
		{"uint16", "q", uint16(65535)},
		{"int32", "i", int32(-70000)},
		{"uint32", "u", uint32(1 << 31)},
		{"int64", "x", int64(math.MinInt64)},
		{"uint64", "t", uint64(math.MaxUint64)},
		{"double", "d", 2.5},
		{"string", "s", "web.service"},
		{"empty string", "s", ""},
		{"object path", "o", ObjectPath("/org/freedesktop/systemd1/unit/web_2eservice")},
		{"signature", "g", Signature("a{sv}")},
		{"variant", "v", Variant{"s", "active"}},
		{"variant of struct", "v", Variant{"(uo)", []any{uint32(3), ObjectPath("/org/freedesktop/systemd1/job/3")}}},
		{"job", "(uo)", []any{uint32(0), ObjectPath("/")}},
		{"string array", "as", []any{"a", "bc", ""}},
		{"empty array", "at", []any{}},
		{"uint64 array", "at", []any{uint64(1), uint64(2)}},
		{"properties", "a{sv}", map[any]any{
			"ActiveState": Variant{"s", "active"},
			"Job":         Variant{"(uo)", []any{uint32(0), ObjectPath("/")}},
			"ExecMainPID": Variant{"u", uint32(42)},
			"Names":       Variant{"as", []any{"web.service"}},
		}},
		{"empty dict", "a{sv}", map[any]any{}},
		{"dict of int keys", "a{ut}", map[any]any{uint32(1): uint64(2), uint32(3): uint64(4)}},
		{"nested arrays", "aas", []any{[]any{"x"}, []any{}, []any{"y", "z"}}},
		{"array of structs", "a(sasb)", []any{[]any{"a", []any{"b"}, true}, []any{"c", []any{}, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Behind one byte, so every alignment but 1 needs padding.
			e := encoder{}
			if err := e.values("y"+tt.sig, []any{byte(0xff), tt.v}); err != nil {
				t.Fatalf("encode: %v", err)
			}
			d := decoder{b: e.b, order: binary.LittleEndian, off: 1}
			got, err := d.value(tt.sig)
			if err != nil {
				t.Fatalf("decode % x: %v", e.b, err)
			}
			if !reflect.DeepEqual(got, tt.v) {
				t.Errorf("got %#v, want %#v", got, tt.v)
			}
			if d.off != len(e.b) {
				t.Errorf("decoded %d of %d bytes", d.off, len(e.b))
			}
		})
	}
}

// TestWireBytes checks encodings worked out by hand from the specification,
// so that the encoder and decoder cannot agree on a mistake.
func TestWireBytes(t *testing.T) {
	tests := []struct {
		name string
		sig  string
		v    any
		hex  string
	}{
		{"job", "(uo)", []any{uint32(7), ObjectPath("/a")}, "07000000" + "02000000" + "2f6100"},
		// length 16, padding to the dict entry's 8, key "k", variant
		// signature "u", padding to 4, value 1.
		{"a{sv}", "a{sv}", map[any]any{"k": Variant{"u", uint32(1)}},
			"10000000" + "00000000" + "01000000" + "6b00" + "017500" + "000000" + "01000000"},
		{"bool and byte", "by", []any{true, byte(2)}, "01000000" + "02"},
		{"signature", "g", Signature("as"), "02617300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := encoder{}
			args := []any{tt.v}
			if tt.name == "bool and byte" {
				args = tt.v.([]any)
			}
			if err := e.values(tt.sig, args); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(e.b); got != tt.hex {
				t.Errorf("got %s, want %s", got, tt.hex)
			}
		})
	}
}

func TestWireBigEndian(t *testing.T) {
	d := decoder{b: []byte{0, 0, 0, 2, 'h', 'i', 0}, order: binary.BigEndian}
	got, err := d.value("s")
	if err != nil || got != "hi" {
		t.Errorf("got %q, %v; want \"hi\"", got, err)
	}
}

func TestWireEncodeErrors(t *testing.T) {
	tests := []struct {
		name, sig string
		args      []any
		want      string
	}{
		{"wrong type", "u", []any{"x"}, "cannot encode string"},
		{"too few values", "su", []any{"x"}, "has 2 values, got 1"},
		{"NUL in string", "s", []any{"a\x00b"}, "without NUL"},
		{"bad signature", "a", []any{[]any{}}, "incomplete type"},
		{"unix fd", "h", []any{uint32(0)}, "unsupported type"},
		{"dict key not basic", "a{vs}", []any{map[any]any{}}, "not a basic type"},
		{"variant of two types", "v", []any{Variant{"ss", "x"}}, "not one complete type"},
		{"slice as dict", "a{ss}", []any{[]any{}}, "cannot encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := encoder{}
			err := e.values(tt.sig, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWireDecodeErrors(t *testing.T) {
	tests := []struct {
		name, sig, hex string
	}{
		{"truncated uint32", "u", "0100"},
		{"string past the end", "s", "05000000" + "6869"},
		{"string not terminated", "s", "02000000" + "686969"},
		{"bool 2", "b", "02000000"},
		{"array overrun", "au", "06000000" + "01000000" + "02000000"},
		{"variant of two types", "v", "02737300"},
		{"huge array", "ay", "ffffffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tt.hex)
			d := decoder{b: b, order: binary.LittleEndian}
			if v, err := d.value(tt.sig); err == nil {
				t.Errorf("decoded %#v, want an error", v)
			}
		})
	}
	// Variants in variants: the depth is the peer's to choose, and bounded.
	var b []byte
	for range 100 {
		b = append(b, 1, 'v', 0)
	}
	d := decoder{b: b, order: binary.LittleEndian}
	if _, err := d.value("v"); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("100 nested variants: got %v, want a depth error", err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	m := &Message{Type: TypeSignal, Serial: 9, Path: "/org/freedesktop/systemd1/unit/web_2eservice",
		Interface: PropertiesInterface, Member: "PropertiesChanged", Signature: "sa{sv}as",
		Body: []any{UnitInterface, map[any]any{"ActiveState": Variant{"s", "active"}}, []any{"Job"}}}
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := readMessage(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("got %#v\nwant %#v", got, m)
	}
	iface, changed, invalidated, ok := PropertiesChanged(got)
	if !ok || iface != UnitInterface || changed["ActiveState"] != "active" || len(invalidated) != 1 {
		t.Errorf("PropertiesChanged: got %q %v %v %v", iface, changed, invalidated, ok)
	}
}

func FuzzReadMessage(f *testing.F) {
	m := &Message{Type: TypeMethodReturn, Serial: 3, ReplySerial: 2, Signature: "a{sv}",
		Body: []any{map[any]any{"Job": Variant{"(uo)", []any{uint32(1), ObjectPath("/j/1")}}}}}
	b, err := m.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		readMessage(bufio.NewReader(bytes.NewReader(b))) // must not panic
	})
}
