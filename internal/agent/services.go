package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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

	mu    sync.Mutex
	ready bool
	done  bool   // exited and will not be restarted
	exit  string // how the last run ended
	// killed says which runs a signal ended before the stop, and
	// whether the stop had to SIGKILL the service: they wrote no coverage
	// counters (coverage.go).
	killed   []string
	restarts int
	pgid     int // the running command's process group; 0 between runs
	// tail is the service's last output lines, across runs (a wait's
	// error shows them); the current or last run's are tail[runStart:].
	tail     []string
	runStart int
	changed  chan struct{} // closed and replaced when ready or done changes
}

// services are a server's declared services; they run as long as it does.
type services struct {
	mu       sync.Mutex
	byName   map[string]*service
	order    []*service // in the order they were started
	stopping bool       // stop was called: no more restarts
	wg       sync.WaitGroup
	// notify tells the host how a run ended, unless the stop or the
	// server's end ended it; nil: nobody is told. It must not block for
	// long: the service's restart waits for it.
	notify func(agentproto.ServiceExit)
}

// start starts the services; it is called once per boot.
func (sv *services) start(ctx context.Context, specs []agentproto.Service) error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.byName == nil {
		sv.byName = make(map[string]*service)
	}
	for _, spec := range specs {
		if sv.byName[spec.Name] != nil {
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
		sv.byName[spec.Name] = s
		sv.order = append(sv.order, s)
		sv.wg.Go(func() { s.supervise(ctx, re, sv.isStopping, sv.notify) })
	}
	return nil
}

// update changes the service's state and wakes those waiting on it.
func (s *service) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// supervise runs the service until it exits for good, and tells notify
// how each run ended on its own.
func (s *service) supervise(ctx context.Context, readyLog *regexp.Regexp, stopping func() bool, notify func(agentproto.ServiceExit)) {
	for {
		err := s.runOnce(ctx, readyLog)
		policy := s.spec.Restart
		again := (policy == "always" || policy == "on-failure" && err != nil) && !stopping()
		s.update(func() {
			s.ready = false
			s.exit = exitText(err)
			// The stop's SIGTERM goes to the whole group, so the sh
			// that runs the command dies of it whatever the program
			// did: only a signal before the stop says something.
			if sig, ok := signaled(err); ok && !stopping() {
				s.killed = append(s.killed, fmt.Sprintf("service %s was killed by signal %d (%v)", s.spec.Name, int(sig), sig))
			}
			if again {
				s.restarts++
			} else {
				s.done = true
			}
		})
		s.mu.Lock()
		// restarts counts this run's restart already when there is one.
		exits := s.restarts
		if !again {
			exits++
		}
		tail := agentproto.NoticeLines(s.tail[s.runStart:])
		s.mu.Unlock()
		// The exit after which it stays down is always told, whatever
		// its number: the host's last word on a service must not be
		// "restarting" when it is down.
		if notify != nil && !stopping() && ctx.Err() == nil && (!again || noteworthy(exits)) {
			e := serviceExit(s.spec.Name, err, again, tail)
			e.Exits = exits
			notify(e)
		}
		if !again || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(restartDelay):
		case <-ctx.Done():
			return
		}
		if stopping() {
			return
		}
	}
}

// noteworthy says whether the nth exit of a restarted service is told to
// the host: the first three, then the 4th, 8th, 16th... A service that crashes at
// once under restart = "always" ends 5 times a second (restartDelay), and
// a report line for each would bury the rest of the test.
func noteworthy(n int) bool { return n <= 3 || n&(n-1) == 0 }

// serviceExit says how a run that ended with err ended, for the host.
func serviceExit(name string, err error, restart bool, tail []string) agentproto.ServiceExit {
	e := agentproto.ServiceExit{Name: name, Restart: restart, Tail: tail}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		ws, _ := exitErr.Sys().(syscall.WaitStatus)
		e.Exit = ws.ExitStatus()
		if ws.Signaled() {
			e.Signal, e.SignalNumber = ws.Signal().String(), int(ws.Signal())
		}
	default:
		e.Exit, e.Error = -1, err.Error()
	}
	return e
}

func exitText(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	return err.Error()
}

func (s *service) runOnce(ctx context.Context, readyLog *regexp.Regexp) error {
	s.mu.Lock()
	s.runStart = len(s.tail) // this run's notice tells its own lines only
	s.mu.Unlock()
	cmd, err := command(ctx, serviceExec(s.spec), posixShell)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	s.mu.Lock()
	s.pgid = cmd.Process.Pid
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pgid = 0
		s.mu.Unlock()
	}()
	running, exited := context.WithCancel(ctx)
	defer exited()
	switch {
	case s.spec.ReadyPort != 0:
		go s.readyWhen(running, &agentproto.Wait{Kind: agentproto.WaitPortOpen, Port: s.spec.ReadyPort})
	case s.spec.ReadyFile != "":
		go s.readyWhen(running, &agentproto.Wait{Kind: agentproto.WaitFile, Path: s.spec.ReadyFile})
	case readyLog == nil:
		s.update(func() { s.ready = true })
	}
	s.readOutput(r, readyLog)
	return cmd.Wait()
}

// readyWhen marks the service ready once w holds, checked as the wait
// request checks it, unless the run ends first.
func (s *service) readyWhen(running context.Context, w *agentproto.Wait) {
	if res := wait(running, w); !res.Canceled && !res.TimedOut && res.Error == "" {
		s.update(func() { s.ready = true })
	}
}

// readOutput copies the service's output to the console line by line and
// watches for the ready line. Only becoming ready wakes waiters; a line
// alone does not.
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
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > serviceTail {
			s.tail = s.tail[1:]
			s.runStart = max(0, s.runStart-1)
		}
		s.mu.Unlock()
		if readyLog != nil && readyLog.MatchString(line) {
			s.update(func() { s.ready = true })
		}
	}
	io.Copy(io.Discard, r) // a line over 1 MiB: keep draining
}

// waitUnit waits until the service called name is ready, or every service
// when name is empty (the host asks so for a system target such as
// default.target), and fails at once when one has exited for good.
func (sv *services) waitUnit(ctx context.Context, name string, timeout time.Duration) agentproto.Result {
	sv.mu.Lock()
	list := slices.Clone(sv.order)
	if name != "" {
		list = nil
		if s := sv.byName[name]; s != nil {
			list = []*service{s}
		}
	}
	sv.mu.Unlock()
	if name != "" && len(list) == 0 {
		return agentproto.Result{Error: fmt.Sprintf("no service %q is declared on this machine", name)}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for _, s := range list {
		if res, ok := s.waitReady(ctx); !ok {
			return res
		}
	}
	return agentproto.Result{}
}

// waitReady waits until s is ready (ok), has exited for good, or ctx ends.
func (s *service) waitReady(ctx context.Context) (agentproto.Result, bool) {
	for {
		s.mu.Lock()
		ready, done, exit, tail, changed := s.ready, s.done, s.exit, strings.Join(s.tail, "\n"), s.changed
		s.mu.Unlock()
		switch {
		case ready:
			return agentproto.Result{}, true
		case done:
			return agentproto.Result{Exit: 1, Output: tail,
				Error: fmt.Sprintf("service %s %s and will not be restarted", s.spec.Name, exit)}, false
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ended(ctx, agentproto.Result{Output: tail}), false
		}
	}
}

func (sv *services) isStopping() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.stopping
}

// stop stops the services as systemd does at shutdown: SIGTERM to each
// one's process group, then SIGKILL to those still running after grace. No
// service is restarted afterwards. It returns when every supervisor ended.
func (sv *services) stop(grace time.Duration) {
	sv.mu.Lock()
	sv.stopping = true
	list := slices.Clone(sv.order)
	sv.mu.Unlock()
	signalAll := func(sig unix.Signal) {
		for _, s := range list {
			s.mu.Lock()
			if s.pgid != 0 {
				unix.Kill(-s.pgid, sig)
				if sig == unix.SIGKILL {
					s.killed = append(s.killed, fmt.Sprintf("service %s did not exit within %v of SIGTERM and was killed", s.spec.Name, grace))
				}
			}
			s.mu.Unlock()
		}
	}
	ended := make(chan struct{})
	go func() {
		sv.wg.Wait()
		close(ended)
	}()
	signalAll(unix.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ended:
		return
	case <-t.C:
	}
	signalAll(unix.SIGKILL)
	// A process that left the group may hold a service's output open:
	// powerOff kills it next, so do not wait for it here.
	t.Reset(time.Second)
	select {
	case <-ended:
	case <-t.C:
	}
}

// serviceExec is how spec's command runs: by /bin/sh -c, or, in a machine
// image without /bin/sh, as the words of a plain command line (no quotes,
// variables or operators: plainArgv), which need no shell.
func serviceExec(spec agentproto.Service) *agentproto.Exec {
	req := &agentproto.Exec{Command: spec.Command, User: spec.User, Dir: spec.Dir, Env: spec.Env}
	if noShellError(posixShell.path) == nil {
		return req
	}
	if argv, ok := plainArgv(spec.Command); ok {
		req.Argv, req.Command = argv, ""
	}
	return req
}

// plainArgv splits a command line made only of words of letters, digits
// and /._-=:,@%+ into its words: what sh would run for it. ok is false for
// anything a shell would interpret.
func plainArgv(line string) (argv []string, ok bool) {
	for _, r := range line {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			strings.ContainsRune("/._-=:,@%+ ", r):
		default:
			return nil, false
		}
	}
	argv = strings.Fields(line)
	return argv, len(argv) > 0
}
