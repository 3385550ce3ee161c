// Package ptytest runs a program on a pseudo-terminal for tests and reads
// what it shows: a test types keys, waits for text on the screen (on an
// event, never a sleep), resizes the window and sends Ctrl-C as a user at a
// terminal would.
package ptytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/vmlab/vmlab/internal/pty"
)

// Screen is a program running on a pseudo-terminal and everything it has
// written there so far. Its methods are safe for concurrent use.
type Screen struct {
	Cmd  *exec.Cmd
	ctl  *os.File
	mu   sync.Mutex
	cond *sync.Cond
	out  bytes.Buffer
	mark int   // Expect searches from here
	eof  error // set when reading the controller ended
	done chan struct{}
}

// Start runs cmd with a new terminal of size s as its stdin, stdout,
// stderr and controlling terminal.
func Start(cmd *exec.Cmd, s pty.Size) (*Screen, error) {
	ctl, term, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer term.Close()
	if err := pty.SetSize(term, s); err != nil {
		ctl.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = term, term, term
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	sc := &Screen{Cmd: cmd, ctl: ctl, done: make(chan struct{})}
	sc.cond = sync.NewCond(&sc.mu)
	go sc.read()
	return sc, nil
}

func (sc *Screen) read() {
	defer close(sc.done)
	buf := make([]byte, 4096)
	for {
		n, err := sc.ctl.Read(buf)
		sc.mu.Lock()
		sc.out.Write(buf[:n])
		if err != nil {
			sc.eof = err // EIO once every holder of the terminal closed it
		}
		sc.cond.Broadcast()
		sc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Type writes s as typed keys ("\x03" is Ctrl-C, "\x04" Ctrl-D, "\x1a" Ctrl-Z).
func (sc *Screen) Type(s string) error {
	_, err := sc.ctl.WriteString(s)
	return err
}

// Resize changes the window size; the program gets SIGWINCH.
func (sc *Screen) Resize(s pty.Size) error { return pty.SetSize(sc.ctl, s) }

// Expect waits until the output written since the last match matches re,
// and returns the match; the next Expect searches after it. It fails at
// the deadline, or when the program closed its terminal, with what the
// screen showed.
func (sc *Screen) Expect(re string, timeout time.Duration) (string, error) {
	rx, err := regexp.Compile(re)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		sc.mu.Lock()
		sc.cond.Broadcast()
		sc.mu.Unlock()
	})
	defer timer.Stop()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		rest := sc.out.Bytes()[sc.mark:]
		if loc := rx.FindIndex(rest); loc != nil {
			sc.mark += loc[1]
			return string(rest[loc[0]:loc[1]]), nil
		}
		if sc.eof != nil {
			return "", fmt.Errorf("terminal closed before %q appeared; it showed:\n%s", re, rest)
		}
		if !time.Now().Before(deadline) {
			return "", fmt.Errorf("no %q on the terminal after %v; it showed:\n%s", re, timeout, rest)
		}
		sc.cond.Wait()
	}
}

// Text is everything the program has written so far.
func (sc *Screen) Text() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.out.String()
}

// Wait waits for the program to exit and for its terminal output to be
// read, then closes the terminal.
func (sc *Screen) Wait() error {
	err := sc.Cmd.Wait()
	select {
	case <-sc.done:
	case <-time.After(5 * time.Second): // a grandchild still holds the terminal
	}
	sc.ctl.Close()
	return err
}

// WaitWithin is Wait bounded by d: exited is false when the program still
// runs after d (it is left running; Close kills it).
func (sc *Screen) WaitWithin(d time.Duration) (exited bool, err error) {
	waited := make(chan error, 1)
	go func() { waited <- sc.Wait() }()
	select {
	case err = <-waited:
		return true, err
	case <-time.After(d):
		return false, nil
	}
}

// Close kills the program if it still runs and releases the terminal.
func (sc *Screen) Close() {
	if sc.Cmd.ProcessState == nil && sc.Cmd.Process != nil {
		sc.Cmd.Process.Kill()
		sc.Cmd.Wait()
	}
	sc.ctl.Close()
	<-sc.done
}
