package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
)

// Client is a connection to a lab's control socket, past the hello. A
// connection serves any number of status requests, then at most one down,
// shell or console, which ends it.
type Client struct {
	pc     *conn
	Lab    string // the lab's name
	Server string // "vmlab VERSION" of the lab's vmlab
}

// Dial connects to the lab called name, or when name is "" to the only
// lab up, else the only one a person started (vmlab up, repl) among the
// tests vmlab run serves. No lab up, several to choose from without a
// name, or a name that is not up is an error that lists the labs that are. Files of labs that crashed or
// were killed are removed on the way; logf (nil: silent) says so.
func Dial(ctx context.Context, name string, logf func(string, ...any)) (*Client, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return nil, err
	}
	up, err := labsIn(dir, logf)
	if err != nil {
		return nil, err
	}
	switch {
	case name == "" && len(up) == 0:
		return nil, errors.New("no lab is up: start one with vmlab up FILE")
	case name == "" && len(up) > 1:
		if name = chosen(dir, up); name == "" {
			return nil, fmt.Errorf("several labs are up (%s): choose one with -lab NAME", joinNames(up))
		}
	case name == "":
		name = up[0]
	case !slices.Contains(up, name):
		if len(up) == 0 {
			return nil, fmt.Errorf("lab %q is not up, and no other is: start it with vmlab up -lab %s FILE", name, name)
		}
		return nil, fmt.Errorf("lab %q is not up; labs up: %s (choose one with -lab NAME)", name, joinNames(up))
	}
	return DialPath(ctx, sockPath(dir, name))
}

// chosen picks, among several labs up, the only one a person started
// (vmlab up or repl), passing over the tests vmlab run serves while they
// run; "" when there is no such one lab.
func chosen(dir string, up []string) string {
	var people []string
	for _, name := range up {
		if info, err := readInfo(lockPath(dir, name)); err != nil || info.Command != "run" {
			people = append(people, name)
		}
	}
	if len(people) != 1 {
		return ""
	}
	return people[0]
}

// DialPath connects to the control socket at path and says hello.
func DialPath(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to the lab at %s: %w", path, err)
	}
	cl := &Client{pc: newConn(c)}
	if err := cl.hello(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *Client) hello(ctx context.Context) error {
	stop := cl.closeOnDone(ctx)
	defer stop()
	sendErr := cl.pc.send(Message{Type: "hello", Version: Version})
	// A server that refuses us (another user) says why and hangs up,
	// maybe before our hello is written: its answer is still readable.
	m, err := cl.reply(ctx, "hello")
	var refused *Error
	if sendErr != nil && !errors.As(err, &refused) {
		return fmt.Errorf("say hello to the lab: %w", sendErr)
	}
	if err != nil {
		return err
	}
	cl.Lab, cl.Server = m.Lab, m.Server
	return nil
}

// Close ends the connection.
func (cl *Client) Close() error { return cl.pc.c.Close() }

// closeOnDone closes the connection when ctx ends, which unblocks any read
// or write on it; stop ends the watch.
func (cl *Client) closeOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { cl.pc.c.Close() })
}

// reply reads the next message, which must be want or an error.
func (cl *Client) reply(ctx context.Context, want string) (Message, error) {
	m, err := cl.pc.readMessage()
	if err != nil {
		if ctx.Err() != nil {
			return m, ctx.Err()
		}
		return m, fmt.Errorf("read the lab's answer: %w", err)
	}
	switch m.Type {
	case want:
		return m, nil
	case "error":
		return m, &Error{Code: m.Code, Message: m.Message, Machines: m.Machines}
	}
	return m, fmt.Errorf("%w: a %q message where %q was due", ErrMalformed, m.Type, want)
}

// Status returns the lab's status.
func (cl *Client) Status(ctx context.Context) (LabStatus, error) {
	stop := cl.closeOnDone(ctx)
	defer stop()
	if err := cl.pc.send(Message{Type: "status"}); err != nil {
		return LabStatus{}, fmt.Errorf("ask lab %q for its status: %w", cl.Lab, err)
	}
	m, err := cl.reply(ctx, "status")
	if err != nil {
		return LabStatus{}, err
	}
	if m.Status == nil {
		return LabStatus{}, fmt.Errorf("%w: a status message without a status", ErrMalformed)
	}
	return *m.Status, nil
}

// Down asks the lab to stop, and waits until it has (its machines are
// stopped when the lab closes the connection) or ctx ends.
func (cl *Client) Down(ctx context.Context) error {
	stop := cl.closeOnDone(ctx)
	defer stop()
	if err := cl.pc.send(Message{Type: "down"}); err != nil {
		return fmt.Errorf("ask lab %q to stop: %w", cl.Lab, err)
	}
	if _, err := cl.reply(ctx, "down"); err != nil {
		return err
	}
	// The lab sends nothing more: the read ends when it closes the
	// connection, its machines stopped.
	readFrame(cl.pc.c)
	if ctx.Err() != nil {
		return fmt.Errorf("wait for lab %q to stop: %w", cl.Lab, ctx.Err())
	}
	return nil
}

// Shell runs o on the machine called name in the lab, streaming its input
// and output, and returns how the command ended. It has the signature of
// machine.(*Machine).Shell with the machine's name bound, so
// attach.Run takes func(ctx, o) { return cl.Shell(ctx, name, o) }. ctx
// ending closes the connection, which ends the command. A goroutine
// copying o.Stdin ends when its Read returns after that.
func (cl *Client) Shell(ctx context.Context, name string, o machine.ShellOptions) (machine.ShellResult, error) {
	stop := cl.closeOnDone(ctx)
	defer stop()
	req := Message{Type: "shell", Machine: name, Command: o.Command, User: o.User, Env: o.Env, TTY: o.TTY,
		Rows: int(o.Size.Rows), Cols: int(o.Size.Cols)}
	if err := cl.pc.send(req); err != nil {
		return machine.ShellResult{}, fmt.Errorf("ask lab %q for a shell on %s: %w", cl.Lab, name, err)
	}
	done := make(chan struct{})
	defer close(done)
	go cl.shellInput(o, done)
	for {
		typ, payload, err := readFrame(cl.pc.c)
		if err != nil {
			if ctx.Err() != nil {
				return machine.ShellResult{}, ctx.Err()
			}
			return machine.ShellResult{}, fmt.Errorf("shell on %s: lab %s hung up (vmlab status -lab %s says whether it is still up): %w", name, cl.Lab, cl.Lab, err)
		}
		switch typ {
		case FrameStdout:
			writeTo(o.Stdout, payload)
		case FrameStderr:
			writeTo(o.Stderr, payload)
		case FrameJSON:
			m, err := decode(payload)
			if err != nil {
				return machine.ShellResult{}, err
			}
			switch {
			case m.Type == "exit" && m.ExitStatus != nil:
				return machine.ShellResult{Status: *m.ExitStatus, Signal: m.ExitSignal}, nil
			case m.Type == "error":
				return machine.ShellResult{}, &Error{Code: m.Code, Message: m.Message, Machines: m.Machines}
			}
		}
	}
}

func writeTo(w io.Writer, p []byte) {
	if w != nil {
		w.Write(p)
	}
}

// shellInput sends the shell's stdin, resizes and signals until done.
func (cl *Client) shellInput(o machine.ShellOptions, done <-chan struct{}) {
	if o.Stdin != nil {
		go func() {
			io.Copy(frameWriter{cl.pc, FrameStdin}, o.Stdin)
			cl.pc.sendData(FrameStdin, nil) // EOF
		}()
	} else {
		cl.pc.sendData(FrameStdin, nil)
	}
	for {
		select {
		case sz, ok := <-o.Resize:
			if !ok {
				o.Resize = nil
				continue
			}
			cl.pc.send(Message{Type: "resize", Rows: int(sz.Rows), Cols: int(sz.Cols)})
		case sig, ok := <-o.Signals:
			if !ok {
				o.Signals = nil
				continue
			}
			cl.pc.send(Message{Type: "signal", Signal: signalName(sig)})
		case <-done:
			return
		}
	}
}

// signalName is the name the protocol uses for sig ("SIGINT").
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return unix.SignalName(s)
	}
	return sig.String()
}

// Console streams the serial console of the machine called name: its
// backlog, then live output, to out, while what in yields goes to the
// guest's serial port. It returns when ctx ends (nil), the lab closes
// the console (nil), or the connection fails. A notice from the lab (a
// write the guest did not take) goes to notices, when not nil.
func (cl *Client) Console(ctx context.Context, name string, in io.Reader, out io.Writer, notices func(string)) error {
	stop := cl.closeOnDone(ctx)
	defer stop()
	if err := cl.pc.send(Message{Type: "console", Machine: name}); err != nil {
		return fmt.Errorf("ask lab %q for the console of %s: %w", cl.Lab, name, err)
	}
	if _, err := cl.reply(ctx, "console"); err != nil {
		return err
	}
	if in != nil {
		go io.Copy(frameWriter{cl.pc, FrameStdin}, in)
	}
	for {
		typ, payload, err := readFrame(cl.pc.c)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("console of %s in lab %s: %w", name, cl.Lab, err)
		}
		switch typ {
		case FrameStdout:
			if _, err := out.Write(payload); err != nil {
				return fmt.Errorf("console of %s in lab %s: %w", name, cl.Lab, err)
			}
		case FrameJSON:
			if m, err := decode(payload); err == nil && m.Type == "notice" && notices != nil {
				notices(m.Message)
			}
		}
	}
}
