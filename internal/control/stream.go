package control

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
)

// signals are the signals a client may send a shell's command
// (machine.ShellOptions.Signals).
var signals = []string{"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGCONT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// shell serves a shell request: it streams the command's input and output
// until it exits, then sends its exit status (or an error) and ends the
// connection. The client hanging up ends the command.
func (s *Server) shell(pc *conn, m Message) {
	if !s.machineFor(pc, m.Machine, true) {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	resize := make(chan pty.Size, 16)
	sigs := make(chan os.Signal, 16)
	o := machine.ShellOptions{Command: m.Command, User: m.User, Env: m.Env, TTY: m.TTY,
		Size: pty.Size{Rows: uint16(m.Rows), Cols: uint16(m.Cols)}, Resize: resize, Signals: sigs,
		Stdin: stdinR, Stdout: frameWriter{pc, FrameStdout}, Stderr: frameWriter{pc, FrameStderr}}
	input := make(chan struct{})
	go func() {
		defer close(input)
		defer cancel() // the client hung up (or broke the protocol): stop the command
		s.shellInput(ctx, pc, stdinW, resize, sigs)
	}()
	res, err := s.backend.Shell(ctx, m.Machine, o)
	cancel()       // unblocks shellInput's sends of resizes and signals nobody reads now
	stdinR.Close() // and its pipe write
	if why := s.stopReason(); why != "" && (err != nil || res.Signal != "" || res.Status >= 128) {
		pc.sendError(CodeStopping, fmt.Sprintf("lab %s is stopping (%s): the command on %s was ended", s.info.Name, why, m.Machine))
	} else if err != nil {
		pc.sendError(CodeFailed, err.Error())
	} else {
		status := res.Status
		pc.send(Message{Type: "exit", ExitStatus: &status, ExitSignal: res.Signal})
	}
	pc.c.Close() // ends shellInput's read
	<-input
}

// shellInput reads the client's frames while a shell runs: stdin bytes
// (an empty frame is EOF), resize and signal messages.
func (s *Server) shellInput(ctx context.Context, pc *conn, stdin *io.PipeWriter, resize chan<- pty.Size, sigs chan<- os.Signal) {
	// The input goes to the command from a goroutine of its own, through
	// a queue of stdinQueue frames, so that a command that is not reading
	// does not keep this loop from its signals, resizes and the client
	// hanging up (until the queue is full).
	feed := make(chan []byte, stdinQueue)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		defer stdin.Close()
		for p := range feed {
			if p == nil {
				return // EOF
			}
			stdin.Write(p) // fails once the command has ended: drop
		}
	}()
	defer func() { <-fed }()
	defer close(feed)
	eof := false
	for {
		typ, payload, err := readFrame(pc.c)
		if err != nil {
			return
		}
		switch typ {
		case FrameStdin:
			if eof {
				continue
			}
			if len(payload) == 0 {
				eof = true
				payload = nil
			}
			select {
			case feed <- payload:
			case <-ctx.Done():
				return
			}
		case FrameJSON:
			m, err := decode(payload)
			if err != nil {
				return
			}
			if err := shellControl(ctx, m, resize, sigs); err != nil {
				// Not an error message: those end a shell. The command
				// goes on.
				pc.send(Message{Type: "notice", Message: err.Error()})
			}
		default:
			return
		}
	}
}

// stdinQueue is how many stdin frames a shell's input queue holds while
// its command does not read them (at most 32 MiB of frames of MaxPayload;
// vmlab's client sends 32 KiB ones, so 1 MiB).
const stdinQueue = 32

// shellControl hands a resize or signal message to the running shell.
func shellControl(ctx context.Context, m Message, resize chan<- pty.Size, sigs chan<- os.Signal) error {
	switch m.Type {
	case "resize":
		if m.Rows <= 0 || m.Cols <= 0 || m.Rows > 0xffff || m.Cols > 0xffff {
			return fmt.Errorf("resize to %dx%d: rows and cols are 1..65535", m.Rows, m.Cols)
		}
		select {
		case resize <- pty.Size{Rows: uint16(m.Rows), Cols: uint16(m.Cols)}:
		case <-ctx.Done():
		}
	case "signal":
		if !slices.Contains(signals, m.Signal) {
			return fmt.Errorf("signal %q: send one of %v", m.Signal, signals)
		}
		select {
		case sigs <- syscall.Signal(unix.SignalNum(m.Signal)):
		case <-ctx.Done():
		}
	default:
		return fmt.Errorf("unknown message %q while a shell runs (send stdin frames, resize or signal)", m.Type)
	}
	return nil
}

// console serves a console request: an acknowledgement, then the console's
// backlog and live bytes as stdout frames, while stdin frames go to the
// guest's serial port, until either side hangs up.
func (s *Server) console(pc *conn, m Message) {
	if !s.machineFor(pc, m.Machine, false) {
		return
	}
	cons, err := s.backend.Console(m.Machine)
	if err != nil {
		pc.sendError(CodeFailed, err.Error())
		return
	}
	defer cons.Close()
	if pc.send(Message{Type: "console", Machine: m.Machine}) != nil {
		return
	}
	output := make(chan struct{})
	go func() {
		defer close(output)
		io.Copy(frameWriter{pc, FrameStdout}, cons)
		pc.c.Close() // the lab closed the console: end the session
	}()
	stop := context.AfterFunc(s.ctx, func() { cons.Close() })
	defer stop()
	for {
		typ, payload, err := readFrame(pc.c)
		if err != nil {
			break
		}
		if typ != FrameStdin || len(payload) == 0 {
			continue
		}
		if _, err := cons.Write(payload); err != nil {
			pc.send(Message{Type: "notice", Message: err.Error()})
		}
	}
	cons.Close()
	<-output
}
