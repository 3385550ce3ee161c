// Package sdbustest is a fake systemd manager on a unix socket, for tests
// of code that waits for units over internal/sdbus: it answers LoadUnit,
// StartUnit, Properties.Get and GetAll for the units a test sets, and
// sends PropertiesChanged and JobRemoved as systemd does to its private
// connections.
package sdbustest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmlab/vmlab/internal/sdbus"
)

// Unit is a unit's state as the fake reports it.
type Unit struct {
	Load   string // LoadState; "" is "loaded"
	Active string // ActiveState; "" is "inactive"
	Sub    string // SubState
	Job    uint32 // the pending job's id; 0: none
	Result string // the Service interface's Result
	// ConditionFailed and AssertFailed say the last start was skipped
	// because a Condition...= was not met, or refused because an
	// Assert...= was not (ConditionResult, AssertResult false with their
	// timestamps set).
	ConditionFailed, AssertFailed bool
}

// Manager is a fake systemd manager listening on Path.
type Manager struct {
	Path string

	mu      sync.Mutex
	units   map[string]Unit
	jobs    uint32                       // NJobs
	senders []func(*sdbus.Message) error // one per connection
	reads   map[string]int               // property reads per unit
	readCh  chan struct{}                // closed and replaced at each read
	started []string                     // StartUnit's units
	conns   []net.Conn                   // open connections
	// OnStart, when set, runs for each StartUnit (in the serving
	// goroutine, without the Manager's lock).
	OnStart func(name string)
	// OnLoad, when set, runs for each LoadUnit before its reply (in the
	// serving goroutine, without the Manager's lock): signals it sends
	// reach the caller before the reply.
	OnLoad func(name string)
}

// NewManager starts a fake manager; it stops with the test.
func NewManager(t testing.TB) *Manager {
	t.Helper()
	m := &Manager{Path: filepath.Join(t.TempDir(), "private"), units: map[string]Unit{},
		reads: map[string]int{}, readCh: make(chan struct{})}
	ln, err := net.Listen("unix", m.Path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.mu.Lock()
			m.conns = append(m.conns, c)
			m.mu.Unlock()
			stop := context.AfterFunc(t.Context(), func() { c.Close() })
			wg.Go(func() {
				defer stop()
				defer c.Close()
				// The first message (the client's Ping) registers the
				// connection for signals, before any call it makes.
				registered := false
				sdbus.Serve(c, func(msg *sdbus.Message, send func(*sdbus.Message) error) {
					if !registered {
						registered = true
						m.mu.Lock()
						m.senders = append(m.senders, send)
						m.mu.Unlock()
					}
					m.handle(msg, send)
				})
			})
		}
	})
	return m
}

// Conns is the number of connections made to the manager so far.
func (m *Manager) Conns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.senders)
}

// Drop closes every connection, as systemd does when it executes itself
// again (daemon-reexec).
func (m *Manager) Drop() {
	m.mu.Lock()
	conns := m.conns
	m.conns = nil
	m.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// UnitPath is the object path systemd gives the unit called name.
func UnitPath(name string) sdbus.ObjectPath {
	var b strings.Builder
	for i := range len(name) {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return sdbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

// Set sets the unit's state and tells every connection, as systemd does
// (PropertiesChanged on the Unit interface).
func (m *Manager) Set(name string, u Unit) {
	m.mu.Lock()
	m.units[name] = u
	senders := m.senders
	m.mu.Unlock()
	props := map[any]any{}
	for k, v := range unitProps(u) {
		props[k] = v
	}
	for _, send := range senders {
		send(&sdbus.Message{Type: sdbus.TypeSignal, Path: UnitPath(name), Interface: sdbus.PropertiesInterface,
			Member: "PropertiesChanged", Signature: "sa{sv}as", Body: []any{sdbus.UnitInterface, props, []any{}}})
	}
}

// SetJobs sets the number of jobs in the manager; a job ends (JobRemoved)
// for each one fewer.
func (m *Manager) SetJobs(n uint32) {
	m.mu.Lock()
	old := m.jobs
	m.jobs = n
	senders := m.senders
	m.mu.Unlock()
	for id := n; id < old; id++ {
		for _, send := range senders {
			send(&sdbus.Message{Type: sdbus.TypeSignal, Path: sdbus.ManagerPath, Interface: sdbus.ManagerInterface,
				Member: "JobRemoved", Signature: "uoss",
				Body: []any{id + 1, sdbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id+1)), "other.service", "done"}})
		}
	}
}

// EndJob ends the unit's job with result ("done", "dependency", ...): its
// Job is 0 from then on, and JobRemoved says so; no PropertiesChanged, as
// when a job ends without changing the unit's state.
func (m *Manager) EndJob(name, result string) {
	m.mu.Lock()
	u := m.units[name]
	id := u.Job
	u.Job = 0
	m.units[name] = u
	senders := m.senders
	m.mu.Unlock()
	for _, send := range senders {
		send(&sdbus.Message{Type: sdbus.TypeSignal, Path: sdbus.ManagerPath, Interface: sdbus.ManagerInterface,
			Member: "JobRemoved", Signature: "uoss",
			Body: []any{id, sdbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id)), name, result}})
	}
}

// WaitRead waits until the unit's properties have been read at least n
// times, or ctx ends.
func (m *Manager) WaitRead(ctx context.Context, name string, n int) error {
	for {
		m.mu.Lock()
		got, ch := m.reads[name], m.readCh
		m.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s read %d times, want %d: %w", name, got, n, ctx.Err())
		}
	}
}

// Started lists the units StartUnit was called for.
func (m *Manager) Started() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.started...)
}

func unitProps(u Unit) map[string]sdbus.Variant {
	load, active := u.Load, u.Active
	if load == "" {
		load = "loaded"
	}
	if active == "" {
		active = "inactive"
	}
	jobPath := sdbus.ObjectPath("/")
	if u.Job != 0 {
		jobPath = sdbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", u.Job))
	}
	loadError := []any{"", ""}
	if load == "not-found" {
		loadError = []any{"org.freedesktop.systemd1.NoSuchUnit", "Unit not found."}
	}
	return map[string]sdbus.Variant{
		"LoadState":   {Sig: "s", Value: load},
		"ActiveState": {Sig: "s", Value: active},
		"SubState":    {Sig: "s", Value: u.Sub},
		"Job":         {Sig: "(uo)", Value: []any{u.Job, jobPath}},
		"LoadError":   {Sig: "(ss)", Value: loadError},
		// A check that has run has a timestamp; one that has not is
		// false with none, as systemd reports it.
		"ConditionResult":             {Sig: "b", Value: !u.ConditionFailed},
		"ConditionTimestampMonotonic": {Sig: "t", Value: checked(u.ConditionFailed)},
		"AssertResult":                {Sig: "b", Value: !u.AssertFailed},
		"AssertTimestampMonotonic":    {Sig: "t", Value: checked(u.AssertFailed)},
	}
}

// checked is a check's timestamp: set when it failed, which is what the
// waits look at.
func checked(failed bool) uint64 {
	if failed {
		return 12345678
	}
	return 0
}

func (m *Manager) handle(msg *sdbus.Message, send func(*sdbus.Message) error) {
	if msg.Flags&sdbus.FlagNoReplyExpected != 0 {
		return
	}
	send(m.answer(msg))
}

func (m *Manager) answer(msg *sdbus.Message) *sdbus.Message {
	switch msg.Interface + "." + msg.Member {
	case "org.freedesktop.DBus.Peer.Ping":
		return sdbus.Reply(msg, "")
	case sdbus.ManagerInterface + ".LoadUnit":
		name := msg.Body[0].(string)
		m.mu.Lock()
		if _, ok := m.units[name]; !ok {
			m.units[name] = Unit{Load: "not-found", Active: "inactive", Sub: "dead"}
		}
		onLoad := m.OnLoad
		m.mu.Unlock()
		if onLoad != nil {
			onLoad(name)
		}
		return sdbus.Reply(msg, "o", UnitPath(name))
	case sdbus.ManagerInterface + ".StartUnit":
		name := msg.Body[0].(string)
		m.mu.Lock()
		m.started = append(m.started, name)
		onStart := m.OnStart
		m.mu.Unlock()
		if onStart != nil {
			onStart(name)
		}
		return sdbus.Reply(msg, "o", sdbus.ObjectPath("/org/freedesktop/systemd1/job/99"))
	case sdbus.PropertiesInterface + ".Get", sdbus.PropertiesInterface + ".GetAll":
		return m.properties(msg)
	}
	return sdbus.ErrorReply(msg, "org.freedesktop.DBus.Error.UnknownMethod", "unknown method "+msg.Member)
}

func (m *Manager) properties(msg *sdbus.Message) *sdbus.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	iface := msg.Body[0].(string)
	var props map[string]sdbus.Variant
	switch {
	case msg.Path == sdbus.ManagerPath && iface == sdbus.ManagerInterface:
		props = map[string]sdbus.Variant{"NJobs": {Sig: "u", Value: m.jobs}}
	default:
		name := m.unitAt(msg.Path)
		if name == "" {
			return sdbus.ErrorReply(msg, "org.freedesktop.DBus.Error.UnknownObject", "unknown object "+string(msg.Path))
		}
		m.reads[name]++
		close(m.readCh)
		m.readCh = make(chan struct{})
		u := m.units[name]
		switch iface {
		case sdbus.UnitInterface:
			props = unitProps(u)
		case sdbus.ServiceInterface:
			props = map[string]sdbus.Variant{"Result": {Sig: "s", Value: u.Result}}
		}
	}
	if msg.Member == "GetAll" {
		all := map[any]any{}
		for k, v := range props {
			all[k] = v
		}
		return sdbus.Reply(msg, "a{sv}", all)
	}
	v, ok := props[msg.Body[1].(string)]
	if !ok {
		return sdbus.ErrorReply(msg, "org.freedesktop.DBus.Error.UnknownProperty", "unknown property")
	}
	return sdbus.Reply(msg, "v", v)
}

func (m *Manager) unitAt(path sdbus.ObjectPath) string {
	for name := range m.units {
		if UnitPath(name) == path {
			return name
		}
	}
	return ""
}
