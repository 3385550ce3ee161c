package qmptest

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// greeting is what the fake announces: the QEMU version the project is
// measured on (DESIGN.md), offering out-of-band execution like QEMU does.
const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "qmptest"}, "capabilities": ["oob"]}}`

type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

type response struct {
	Return json.RawMessage `json:"return,omitempty"`
	Error  *qmp.Error      `json:"error,omitempty"`
	ID     json.RawMessage `json:"id,omitempty"`
}

type event struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp timestamp       `json:"timestamp"`
}

type timestamp struct {
	Seconds      int64 `json:"seconds"`
	Microseconds int64 `json:"microseconds"`
}

func timestampOf(t time.Time) timestamp {
	return timestamp{Seconds: t.Unix(), Microseconds: int64(t.Nanosecond()) / 1000}
}

// serverConn is one client connection. ready (guarded by Server.mu) is set
// once qmp_capabilities has run; events go only to ready connections, as in
// QEMU.
type serverConn struct {
	nc    net.Conn
	ready bool

	wmu sync.Mutex // serializes whole messages
}

// send writes one message as a JSON line. Messages hold only encoded
// values, so encoding cannot fail; write errors mean the client has gone,
// which the read side notices.
func (c *serverConn) send(msg any) {
	line, _ := json.Marshal(msg)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(append(line, '\n'))
}

// serve speaks QMP on one connection until it fails or is closed.
func (s *Server) serve(c *serverConn) {
	defer s.wg.Done()
	defer s.forget(c)
	if _, err := c.nc.Write([]byte(greeting + "\n")); err != nil {
		return
	}
	dec := json.NewDecoder(c.nc)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return // closed, or input we cannot resynchronize after
		}
		s.dispatch(c, req)
	}
}

func (s *Server) forget(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.nc.Close()
}

// dispatch answers the handshake inline, to keep it ordered, and runs every
// other command on its own goroutine.
func (s *Server) dispatch(c *serverConn, req request) {
	if req.Execute == "qmp_capabilities" {
		s.negotiate(c, req)
		return
	}
	if !s.isReady(c) {
		c.send(response{ID: req.ID, Error: &qmp.Error{
			Class: "CommandNotFound",
			Desc:  "Expecting capabilities negotiation with 'qmp_capabilities'",
		}})
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.send(s.run(req))
	}()
}

// negotiate leaves negotiation mode; it is marked before the reply goes out
// so that an Emit right after the client's handshake reaches it.
func (s *Server) negotiate(c *serverConn, req request) {
	s.mu.Lock()
	already := c.ready
	c.ready = true
	s.mu.Unlock()
	if already {
		c.send(response{ID: req.ID, Error: &qmp.Error{
			Class: "CommandNotFound",
			Desc:  "Capabilities negotiation is already complete, command ignored",
		}})
		return
	}
	c.send(response{ID: req.ID, Return: json.RawMessage("{}")})
}

func (s *Server) isReady(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.ready
}

func (s *Server) run(req request) response {
	h := s.handler(req.Execute)
	if h == nil {
		return response{ID: req.ID, Error: &qmp.Error{
			Class: "CommandNotFound",
			Desc:  fmt.Sprintf("The command %s has not been found", req.Execute),
		}}
	}
	ret, qerr := h(req.Arguments)
	if qerr != nil {
		return response{ID: req.ID, Error: qerr}
	}
	if ret == nil {
		return response{ID: req.ID, Return: json.RawMessage("{}")}
	}
	raw, err := json.Marshal(ret)
	if err != nil {
		s.t.Errorf("encode result of %s: %v", req.Execute, err)
		return response{ID: req.ID, Error: &qmp.Error{
			Class: "GenericError",
			Desc:  fmt.Sprintf("qmptest: encode result: %v", err),
		}}
	}
	return response{ID: req.ID, Return: raw}
}
