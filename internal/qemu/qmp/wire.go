package qmp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Error is a QMP error reply: QEMU received the command and refused or failed it.
// Execute wraps it, so callers find it with errors.As.
type Error struct {
	// Class is QEMU's error class, such as "GenericError", "CommandNotFound" or
	// "DeviceNotFound".
	Class string `json:"class"`
	// Desc is QEMU's human-readable description.
	Desc string `json:"desc"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%s)", e.Desc, e.Class)
}

// Greeting is what QEMU announces when the connection opens.
type Greeting struct {
	Version Version
	// Capabilities lists optional protocol features offered, such as "oob".
	// The client enables none of them.
	Capabilities []string
}

// Version is a QEMU version as QMP reports it in the greeting and in
// query-version.
type Version struct {
	Major, Minor, Micro int
	// Package is the distribution's build string, such as "Debian 1:7.2+dfsg-7".
	Package string
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// greetingMessage is the wire form of the greeting:
// {"QMP": {"version": {"qemu": {...}, "package": ...}, "capabilities": [...]}}.
type greetingMessage struct {
	QMP *struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

func (g greetingMessage) greeting() Greeting {
	v := g.QMP.Version
	return Greeting{
		Version: Version{
			Major:   v.QEMU.Major,
			Minor:   v.QEMU.Minor,
			Micro:   v.QEMU.Micro,
			Package: v.Package,
		},
		Capabilities: g.QMP.Capabilities,
	}
}

// request is one command sent to QEMU. Arguments is omitted when empty:
// QEMU rejects "arguments": null.
type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	ID        uint64          `json:"id"`
}

// encodeRequest renders one command as a JSON line.
func encodeRequest(command string, args any, id uint64) ([]byte, error) {
	req := request{Execute: command, ID: id}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("encode arguments: %w", err)
		}
		if string(raw) != "null" {
			req.Arguments = raw
		}
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(line, '\n'), nil
}

// message is any server message after the greeting: a reply (return or
// error, with the id we sent) or an event. Unknown keys are ignored, as the
// QMP specification asks of clients.
type message struct {
	Return    json.RawMessage `json:"return"`
	Error     *Error          `json:"error"`
	ID        json.RawMessage `json:"id"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// id reports the numeric id of a reply; ok is false for replies without an
// id we could have sent (QEMU answers unparsable input without one).
func (m *message) id() (id uint64, ok bool) {
	if m.ID == nil {
		return 0, false
	}
	id, err := strconv.ParseUint(string(m.ID), 10, 64)
	return id, err == nil
}

func (m *message) event() Event {
	ev := Event{Name: m.Event, Data: m.Data}
	if ts := m.Timestamp; ts != nil {
		ev.Time = time.Unix(ts.Seconds, ts.Microseconds*int64(time.Microsecond))
	}
	return ev
}

// reply is what the reader hands to a waiting Execute.
type reply struct {
	ret json.RawMessage
	err error
}

func (m *message) reply() reply {
	switch {
	case m.Error != nil:
		return reply{err: m.Error}
	case m.Return != nil:
		return reply{ret: m.Return}
	default:
		return reply{err: fmt.Errorf("decode reply: neither return nor error")}
	}
}
