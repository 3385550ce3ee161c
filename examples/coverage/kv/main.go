// Command kv is the Go half of the coverage example: a key-value server and
// its client in one binary, built with `go build -cover`. The server's
// machine runs `kv serve`, the client's `kv put` and `kv get`; the combined
// report then shows the server's lines covered on one machine, the client's
// on the other, and the shared protocol code on both.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kv:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: kv serve ADDR | kv put ADDR KEY VALUE | kv get ADDR KEY")
	}
	switch {
	case args[0] == "serve" && len(args) == 2:
		return serve(args[1])
	case args[0] == "put" && len(args) == 4:
		reply, err := call(args[1], request{op: "put", key: args[2], value: args[3]})
		if err == nil {
			fmt.Println(reply)
		}
		return err
	case args[0] == "get" && len(args) == 3:
		reply, err := call(args[1], request{op: "get", key: args[2]})
		if err == nil {
			fmt.Println(reply)
		}
		return err
	}
	return fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// request is one line of the protocol: "put KEY VALUE" or "get KEY".
type request struct{ op, key, value string }

func (r request) encode() string {
	if r.op == "put" {
		return fmt.Sprintf("put %s %s\n", r.key, r.value)
	}
	return fmt.Sprintf("get %s\n", r.key)
}

func decode(line string) (request, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 3 && f[0] == "put":
		return request{op: "put", key: f[1], value: f[2]}, nil
	case len(f) == 2 && f[0] == "get":
		return request{op: "get", key: f[1]}, nil
	}
	return request{}, fmt.Errorf("bad request %q", line)
}

// call is the client: one request, one reply line.
func call(addr string, r request) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := fmt.Fprint(c, r.encode()); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	reply = strings.TrimSuffix(reply, "\n")
	if msg, ok := strings.CutPrefix(reply, "error "); ok {
		return "", errors.New(msg)
	}
	return reply, nil
}

// serve answers requests until SIGTERM, then returns so that the coverage
// counters are written (a Go program writes them when main returns).
func serve(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); l.Close() }()
	s := &store{m: map[string]string{}}
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go s.handle(c)
	}
}

type store struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *store) handle(c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	r, err := decode(line)
	if err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.op == "put" {
		s.m[r.key] = r.value
		fmt.Fprintln(c, "ok")
		return
	}
	v, ok := s.m[r.key]
	if !ok {
		fmt.Fprintf(c, "error no key %s\n", r.key)
		return
	}
	fmt.Fprintln(c, v)
}
