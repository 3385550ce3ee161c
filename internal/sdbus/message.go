package sdbus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MessageType is a message's kind.
type MessageType byte

// Message types.
const (
	TypeMethodCall   MessageType = 1
	TypeMethodReturn MessageType = 2
	TypeError        MessageType = 3
	TypeSignal       MessageType = 4
)

// Message flags.
const (
	// FlagNoReplyExpected: the sender does not want a reply.
	FlagNoReplyExpected byte = 0x1
)

// Message is one D-Bus message. Body holds the values of Signature.
type Message struct {
	Type        MessageType
	Flags       byte
	Serial      uint32
	Path        ObjectPath
	Interface   string
	Member      string
	ErrorName   string
	ReplySerial uint32
	Destination string
	Sender      string
	Signature   Signature
	Body        []any
}

// Header field codes.
const (
	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSender      = 7
	fieldSignature   = 8
)

// maxMessage bounds a message (the specification allows 128 MiB); the
// largest systemd sends vmlab is a unit's properties, a few KiB.
const maxMessage = 16 << 20

// marshal encodes m: the fixed header, the header fields (as the signature
// "yyyyuua(yv)" says) padded to 8 bytes, then the body.
func (m *Message) marshal() ([]byte, error) {
	body := encoder{}
	if err := body.values(string(m.Signature), m.Body); err != nil {
		return nil, fmt.Errorf("encode %s body: %w", m.Member, err)
	}
	var fields []any
	add := func(code byte, sig Signature, v any, set bool) {
		if set {
			fields = append(fields, []any{code, Variant{sig, v}})
		}
	}
	add(fieldPath, "o", m.Path, m.Path != "")
	add(fieldInterface, "s", m.Interface, m.Interface != "")
	add(fieldMember, "s", m.Member, m.Member != "")
	add(fieldErrorName, "s", m.ErrorName, m.ErrorName != "")
	add(fieldReplySerial, "u", m.ReplySerial, m.ReplySerial != 0)
	add(fieldDestination, "s", m.Destination, m.Destination != "")
	add(fieldSender, "s", m.Sender, m.Sender != "")
	add(fieldSignature, "g", m.Signature, m.Signature != "")
	head := encoder{}
	err := head.values("yyyyuua(yv)", []any{byte('l'), byte(m.Type), m.Flags, byte(1),
		uint32(len(body.b)), m.Serial, fields})
	if err != nil {
		return nil, fmt.Errorf("encode %s header: %w", m.Member, err)
	}
	head.pad(8)
	if len(head.b)+len(body.b) > maxMessage {
		return nil, fmt.Errorf("message of %d bytes is over the limit of %d", len(head.b)+len(body.b), maxMessage)
	}
	return append(head.b, body.b...), nil
}

// readMessage reads one message from r.
func readMessage(r *bufio.Reader) (*Message, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, err
	}
	var order binary.ByteOrder
	switch fixed[0] {
	case 'l':
		order = binary.LittleEndian
	case 'B':
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("read message: bad byte order %q", fixed[0])
	}
	if fixed[3] != 1 {
		return nil, fmt.Errorf("read message: protocol version %d, want 1", fixed[3])
	}
	bodyLen := uint64(order.Uint32(fixed[4:]))
	fieldsLen := uint64(order.Uint32(fixed[12:]))
	headLen := (16 + fieldsLen + 7) / 8 * 8
	if headLen+bodyLen > maxMessage {
		return nil, fmt.Errorf("read message: %d bytes is over the limit of %d", headLen+bodyLen, maxMessage)
	}
	buf := make([]byte, headLen+bodyLen)
	copy(buf, fixed[:])
	if _, err := io.ReadFull(r, buf[16:]); err != nil {
		return nil, fmt.Errorf("read message: %w", noEOF(err))
	}
	m, err := parse(buf, order, int(headLen))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return m, nil
}

// parse decodes the message in buf, whose body starts at bodyAt.
func parse(buf []byte, order binary.ByteOrder, bodyAt int) (*Message, error) {
	d := decoder{b: buf[:bodyAt], order: order}
	head, err := d.values("yyyyuua(yv)")
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	m := &Message{Type: MessageType(head[1].(byte)), Flags: head[2].(byte), Serial: head[5].(uint32)}
	for _, f := range head[6].([]any) {
		if err := m.setField(f.([]any)); err != nil {
			return nil, err
		}
	}
	if m.Serial == 0 {
		return nil, errors.New("serial 0")
	}
	d = decoder{b: buf[bodyAt:], order: order}
	if m.Body, err = d.values(string(m.Signature)); err != nil {
		return nil, fmt.Errorf("body of %s: %w", m.Signature, err)
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("body of %s: %d bytes left over", m.Signature, len(d.b)-d.off)
	}
	return m, nil
}

// setField sets the header field f, a (code, variant) pair; unknown codes
// are ignored, as the specification asks.
func (m *Message) setField(f []any) error {
	v := f[1].(Variant)
	want := map[byte]Signature{fieldPath: "o", fieldInterface: "s", fieldMember: "s", fieldErrorName: "s",
		fieldReplySerial: "u", fieldDestination: "s", fieldSender: "s", fieldSignature: "g"}
	code := f[0].(byte)
	sig, known := want[code]
	if !known {
		return nil
	}
	if v.Sig != sig {
		return fmt.Errorf("header field %d has type %s, want %s", code, v.Sig, sig)
	}
	switch code {
	case fieldPath:
		m.Path = v.Value.(ObjectPath)
	case fieldInterface:
		m.Interface = v.Value.(string)
	case fieldMember:
		m.Member = v.Value.(string)
	case fieldErrorName:
		m.ErrorName = v.Value.(string)
	case fieldReplySerial:
		m.ReplySerial = v.Value.(uint32)
	case fieldDestination:
		m.Destination = v.Value.(string)
	case fieldSender:
		m.Sender = v.Value.(string)
	case fieldSignature:
		m.Signature = v.Value.(Signature)
	}
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
