package machine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// Shell runs o.Command (or a login shell) in the machine for a user at a
// terminal or in a pipe, and returns how it ended; a non-zero status is not
// an error. It boots the machine if it was never started. Its output is
// streamed to o.Stdout and o.Stderr, which may block (a paused terminal
// slows the command down, not the machine's other calls). It has no
// timeout: it runs until the command ends, ctx ends (a *StoppedError) or
// the machine goes down (a *DownError).
func (m *Machine) Shell(ctx context.Context, o ShellOptions) (ShellResult, error) {
	what := "shell"
	if len(o.Command) > 0 {
		what = "command " + shortCommand(strings.Join(o.Command, " "))
	}
	req, err := shellRequest(o)
	if err != nil {
		return ShellResult{}, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	agent, err := m.client(ctx, what)
	if err != nil {
		return ShellResult{}, err
	}
	signals, stop := signalNames(o.Signals)
	res, err := agent.Stream(ctx, req, agentclient.StreamIO{
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Resize: o.Resize, Signals: signals,
	})
	stop()
	if err := m.outcome(ctx, ctx, what, 0, res, "", err); err != nil {
		return ShellResult{}, err
	}
	r := ShellResult{Status: res.Exit}
	m.noteKilled(what, res)
	if res.SignalNumber > 0 {
		r.Status, r.Signal = 128+res.SignalNumber, unix.SignalName(syscall.Signal(res.SignalNumber))
	}
	return r, nil
}

// shellRequest is the agent's request for o.
func shellRequest(o ShellOptions) (agentproto.Exec, error) {
	if len(o.Command) > 0 && o.Command[0] == "" {
		return agentproto.Exec{}, errors.New("the command's program name is empty")
	}
	req := agentproto.Exec{Argv: o.Command, Login: len(o.Command) == 0, User: o.User}
	for _, k := range slices.Sorted(maps.Keys(o.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return agentproto.Exec{}, fmt.Errorf("environment variable name %q: a name is not empty and has no '=' or NUL", k)
		}
		req.Env = append(req.Env, k+"="+o.Env[k])
	}
	if o.TTY {
		term := cmp.Or(o.Env["TERM"], os.Getenv("TERM"), "xterm")
		req.TTY = &agentproto.TTY{Term: term, Rows: o.Size.Rows, Cols: o.Size.Cols}
	}
	return req, nil
}

// signalNames returns the names of the signals that arrive on in, for the
// agent, and the function that stops translating them and waits.
func signalNames(in <-chan os.Signal) (names <-chan string, stop func()) {
	if in == nil {
		return nil, func() {}
	}
	out, done, finished := make(chan string), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case sig, ok := <-in:
				if !ok {
					return
				}
				n, ok := sig.(syscall.Signal)
				if !ok {
					continue
				}
				select {
				case out <- unix.SignalName(n):
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return out, func() {
		close(done)
		<-finished
	}
}
