package agentclient

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/pty"
)

// StreamIO connects a streamed command (Client.Stream) to the host: a
// terminal or pipes. Nil fields mean no input, discarded output, no
// resizes and no signals.
type StreamIO struct {
	Stdin io.Reader
	// Stdout and Stderr may block (a paused terminal): each is written from
	// its own goroutine, and the guest sends output under a window, so at
	// most agentproto.WindowSize bytes wait on the host and a slow writer
	// slows the command, never the channel.
	Stdout, Stderr io.Writer
	// Resize carries the terminal's new sizes (Exec.TTY only).
	Resize <-chan pty.Size
	// Signals carries signal names from agentproto.Signals for the command
	// (its terminal's foreground job with Exec.TTY); others are dropped.
	Signals <-chan string
}

// Stream runs a command in the guest as Exec does, for a user at a
// terminal or a pipe rather than a test: its output may be written to
// writers that block, and window sizes and signals follow it. It returns
// when the command has ended and its output has been written out.
func (c *Client) Stream(ctx context.Context, req agentproto.Exec, sio StreamIO) (agentproto.Result, error) {
	if err := checkArgs(req.Command, req.Env); err != nil {
		return agentproto.Result{}, err
	}
	for i, a := range req.Argv {
		if len(a) > agentproto.MaxArg {
			return agentproto.Result{}, fmt.Errorf("%w: argument %d of the command is %d bytes, over the %d bytes Linux takes in one",
				ErrTooLarge, i, len(a), agentproto.MaxArg)
		}
	}
	req.Stdin = sio.Stdin != nil
	req.OutputWindow = true
	cl := &call{}
	ack := func(n int) { c.w.WriteFrame(agentproto.TAck, cl.id, agentproto.AckPayload(n)) }
	stdout, stderr := agentproto.NewAckQueue(ack), agentproto.NewAckQueue(ack)
	cl.stdout, cl.stderr = queueWriter{stdout}, queueWriter{stderr}
	id, err := c.start(agentproto.Request{Op: agentproto.OpExec, Exec: &req}, cl)
	if err != nil {
		return agentproto.Result{}, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { drain(sio.Stdout, stdout) })
	wg.Go(func() { drain(sio.Stderr, stderr) })
	if sio.Stdin != nil {
		go c.sendStdin(id, sio.Stdin, cl.in)
	}
	ended := make(chan struct{})
	wg.Go(func() { c.control(id, sio, ended) })
	res, err := c.await(ctx, id, cl)
	close(ended)
	// The Result came after the last output frame: the queues hold all of it.
	stdout.Close(err)
	stderr.Close(err)
	wg.Wait()
	return res, err
}

// queueWriter hands the channel reader's frames to a queue, so the reader
// never waits for a slow writer.
type queueWriter struct{ q *agentproto.Queue }

func (w queueWriter) Write(p []byte) (int, error) {
	w.q.Push(p)
	return len(p), nil
}

// drain writes q out to w until q ends. After a write error (a closed pipe)
// it keeps reading, so the guest's window stays open and the command ends
// as it would have.
func drain(w io.Writer, q *agentproto.Queue) {
	if w != nil {
		io.Copy(w, q)
	}
	io.Copy(io.Discard, q)
}

// control forwards sio's resizes and signals as frames until ended closes.
func (c *Client) control(id uint32, sio StreamIO, ended <-chan struct{}) {
	for {
		select {
		case s, ok := <-sio.Resize:
			if !ok {
				sio.Resize = nil
				continue
			}
			c.w.WriteFrame(agentproto.TResize, id, agentproto.ResizePayload(s.Rows, s.Cols))
		case name, ok := <-sio.Signals:
			if !ok {
				sio.Signals = nil
				continue
			}
			if slices.Contains(agentproto.Signals, name) {
				c.w.WriteFrame(agentproto.TSignal, id, []byte(name))
			}
		case <-ended:
			return
		}
	}
}
