package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Services in fast mode: the agent starts each declared service, decides
// when it is ready (a port, a file or a log line), restarts it by its
// policy, and answers wait_for_unit. Each output line goes to the console
// as "service NAME: line", so it lands in the machine's log on the host.

// serviceTail is how many output lines a service keeps for error messages.
const serviceTail = 20

// restartDelay spaces restarts, so a service that dies at once does not
// spin the guest's only CPU.
const restartDelay = 200 * time.Millisecond

type service struct {
	spec agentproto.Service

	mu       sync.Mutex
	ready    bool
	done     bool   // exited and will not be restarted
	exit     string // how the last run ended
	restarts int
	tail     []string
	changed  chan struct{} // closed and replaced on every state change
}

var services struct {
	mu     sync.Mutex
	byName map[string]*service
}

// startServices starts the services; it is called once per boot.
func startServices(ctx context.Context, specs []agentproto.Service) error {
	services.mu.Lock()
	defer services.mu.Unlock()
	if services.byName == nil {
		services.byName = make(map[string]*service)
	}
	for _, spec := range specs {
		if services.byName[spec.Name] != nil {
			return fmt.Errorf("start service %s: already started", spec.Name)
		}
		var re *regexp.Regexp
		if spec.ReadyLog != "" {
			var err error
			if re, err = regexp.Compile(spec.ReadyLog); err != nil {
				return fmt.Errorf("start service %s: ready log pattern: %w", spec.Name, err)
			}
		}
		s := &service{spec: spec, changed: make(chan struct{})}
		services.byName[spec.Name] = s
		go s.supervise(ctx, re)
	}
	return nil
}

func (s *service) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// supervise runs the service until it exits for good.
func (s *service) supervise(ctx context.Context, readyLog *regexp.Regexp) {
	for {
		err := s.runOnce(ctx, readyLog)
		policy := s.spec.Restart
		again := policy == "always" || policy == "on-failure" && err != nil
		s.update(func() {
			s.ready = false
			s.exit = exitText(err)
			if again {
				s.restarts++
			} else {
				s.done = true
			}
		})
		if !again || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(restartDelay):
		case <-ctx.Done():
			return
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	return err.Error()
}

func (s *service) runOnce(ctx context.Context, readyLog *regexp.Regexp) error {
	cmd, err := command(ctx, &agentproto.Exec{Command: s.spec.Command, User: s.spec.User, Dir: s.spec.Dir, Env: s.spec.Env})
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	done, err := start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	defer done()
	if readyLog == nil && s.spec.ReadyPort == 0 && s.spec.ReadyFile == "" {
		s.update(func() { s.ready = true })
	}
	exited := make(chan struct{})
	go s.checkReady(exited)
	s.readOutput(r, readyLog)
	err = cmd.Wait()
	close(exited)
	return err
}

// readOutput copies the service's output to the console line by line and
// watches for the ready line.
func (s *service) readOutput(r io.ReadCloser, readyLog *regexp.Regexp) {
	defer r.Close()
	console, _ := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if console != nil {
		defer console.Close()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if console != nil {
			fmt.Fprintf(console, "service %s: %s\n", s.spec.Name, line)
		}
		s.update(func() {
			s.tail = append(s.tail, line)
			if len(s.tail) > serviceTail {
				s.tail = s.tail[1:]
			}
			if readyLog != nil && readyLog.MatchString(line) {
				s.ready = true
			}
		})
	}
	io.Copy(io.Discard, r) // a line over 1 MiB: keep draining
}

// checkReady polls the port or file until it is there or the run ends.
func (s *service) checkReady(exited <-chan struct{}) {
	if s.spec.ReadyPort == 0 && s.spec.ReadyFile == "" {
		return
	}
	tick := time.NewTicker(cheapInterval)
	defer tick.Stop()
	for {
		ok := false
		if s.spec.ReadyPort != 0 {
			ok = dial("tcp", fmt.Sprintf("localhost:%d", s.spec.ReadyPort)) == nil
		} else {
			_, err := os.Stat(s.spec.ReadyFile)
			ok = err == nil
		}
		if ok {
			s.update(func() { s.ready = true })
			return
		}
		select {
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

// waitUnit waits until the service is ready, or fails at once when it has
// exited for good.
func waitUnit(ctx context.Context, name string, timeout time.Duration) agentproto.Result {
	services.mu.Lock()
	s := services.byName[name]
	services.mu.Unlock()
	if s == nil {
		return agentproto.Result{Error: fmt.Sprintf("no service %q is declared on this machine", name)}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for {
		s.mu.Lock()
		ready, done, exit, tail, changed := s.ready, s.done, s.exit, strings.Join(s.tail, "\n"), s.changed
		s.mu.Unlock()
		switch {
		case ready:
			return agentproto.Result{}
		case done:
			return agentproto.Result{Exit: 1, Output: tail,
				Error: fmt.Sprintf("service %s %s and will not be restarted", name, exit)}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			res := agentproto.Result{Output: tail}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				res.TimedOut = true
			} else {
				res.Canceled = true
			}
			return res
		}
	}
}
