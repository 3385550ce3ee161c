// Package agentclient is the host's end of the agent channel: it sends
// requests to the guest agent and routes the frames that come back to the
// calls waiting for them. Many calls may run at once on one Client.
//
// The Client knows nothing about machines or QEMU; whoever owns the channel
// (package machine) closes it when the VM dies, and every call in flight then
// fails at once with an error wrapping ErrClosed.
package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/treecopy"
)

// ErrClosed is wrapped by the error of every call made or pending after the
// channel ended.
var ErrClosed = errors.New("agent channel closed")

// ErrTooLarge is wrapped by the error of a call the guest cannot take: a
// command or environment entry longer than Linux execs (agentproto.MaxArg,
// 128 KiB), or a request that does not fit in one frame
// (agentproto.MaxPayload, 1 MiB, as JSON), such as a long list of services.
// The call fails alone, before anything is sent; the channel stays up.
var ErrTooLarge = errors.New("request too large")

// Client is a connection to one agent. Its methods are safe for concurrent use.
type Client struct {
	conn io.ReadWriteCloser
	w    *agentproto.Writer

	hello    chan struct{} // closed when Hello arrives
	helloMsg agentproto.Hello

	// A systemd guest's agent hands over to systemd after Units, and
	// systemd's unit agent says hello again: Units makes rehello, closed
	// when that second hello arrives. Any other second hello breaks the
	// channel.
	rehello    chan struct{}
	rehelloMsg agentproto.Hello

	nextID atomic.Uint32

	onNotice func(agentproto.Notice) // under mu; nil: notices are dropped

	mu    sync.Mutex
	calls map[uint32]*call
	err   error         // why the channel ended; set once
	done  chan struct{} // closed when the reader goroutine has returned
}

// call is a request waiting for its Result.
type call struct {
	id             uint32
	stdout, stderr io.Writer          // nil: discard
	data           *agentproto.Queue  // copy-out bytes
	in             *agentproto.Window // room for Stdin or copy-in Data frames; closed when the call ends
	result         chan agentproto.Result
}

// New starts reading conn. Close releases it.
func New(conn io.ReadWriteCloser) *Client {
	c := &Client{
		conn:  conn,
		w:     agentproto.NewWriter(conn),
		hello: make(chan struct{}),
		calls: make(map[uint32]*call),
		done:  make(chan struct{}),
	}
	go c.read()
	return c
}

// Hello waits for the agent's greeting.
func (c *Client) Hello(ctx context.Context) (agentproto.Hello, error) {
	select {
	case <-c.hello:
		return c.helloMsg, nil
	case <-c.done:
		return agentproto.Hello{}, c.Err()
	case <-ctx.Done():
		return agentproto.Hello{}, ctx.Err()
	}
}

// Done is closed when the channel has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the channel ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the channel and waits for the reader goroutine. It is
// idempotent.
func (c *Client) Close() error {
	c.fail(fmt.Errorf("%w: closed by the host", ErrClosed))
	c.conn.Close()
	<-c.done
	return nil
}

func (c *Client) read() {
	defer close(c.done)
	r := agentproto.NewReader(c.conn)
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			err = errors.New("the guest closed it")
		}
		if err == nil {
			err = c.route(f)
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrClosed, err))
			return
		}
	}
}

// fail ends the channel with err (the first error wins) and releases every
// pending call.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for id, cl := range c.calls {
		if cl.data != nil {
			cl.data.Close(err)
		}
		cl.in.Close()
		close(cl.result)
		delete(c.calls, id)
	}
}

// OnNotice sets the function that hears the agent's notices (what
// happened in the guest unasked, such as a service exiting); nil drops
// them. Set it before the request whose effects it should hear
// (Services). f is called on the channel's reading goroutine, one notice
// at a time, and must not block: every call waits while it runs.
func (c *Client) OnNotice(f func(agentproto.Notice)) {
	c.mu.Lock()
	c.onNotice = f
	c.mu.Unlock()
}

func (c *Client) notice(f agentproto.Frame) error {
	var n agentproto.Notice
	if err := agentproto.Decode(f, &n); err != nil {
		return err
	}
	c.mu.Lock()
	on := c.onNotice
	c.mu.Unlock()
	if on != nil {
		on(n)
	}
	return nil
}

func (c *Client) route(f agentproto.Frame) error {
	if f.Type == agentproto.TNotice {
		return c.notice(f)
	}
	if f.Type == agentproto.THello {
		select {
		case <-c.hello:
			return c.routeRehello(f)
		default:
		}
		if err := agentproto.Decode(f, &c.helloMsg); err != nil {
			return err
		}
		close(c.hello)
		return nil
	}
	c.mu.Lock()
	cl := c.calls[f.Stream]
	if f.Type == agentproto.TResult {
		delete(c.calls, f.Stream)
	}
	c.mu.Unlock()
	if cl == nil {
		return nil // a call the host gave up on; its frames are dropped
	}
	switch f.Type {
	case agentproto.TStdout:
		write(cl.stdout, f.Payload)
	case agentproto.TStderr:
		write(cl.stderr, f.Payload)
	case agentproto.TData:
		if cl.data != nil {
			cl.data.Push(f.Payload)
		}
	case agentproto.TDataEOF:
		if cl.data != nil {
			cl.data.Close(nil)
		}
	case agentproto.TAck:
		n, err := agentproto.DecodeAck(f)
		if err != nil {
			return err
		}
		cl.in.Ack(n)
	case agentproto.TResult:
		var res agentproto.Result
		if err := agentproto.Decode(f, &res); err != nil {
			return err
		}
		if cl.data != nil {
			cl.data.Close(nil)
		}
		// The guest reads no more of the call's input.
		cl.in.Close()
		cl.result <- res
	default:
		return fmt.Errorf("%w: unexpected %v frame from the guest", agentproto.ErrMalformed, f.Type)
	}
	return nil
}

// routeRehello takes the hello of a systemd guest's unit agent, which
// continues the session once the PID-1 agent handed over (Units). Every
// call of the first agent has had its result by then: one still waiting
// would never get it.
func (c *Client) routeRehello(f agentproto.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.rehello:
		return fmt.Errorf("%w: a third hello", agentproto.ErrMalformed)
	default:
	}
	if c.rehello == nil {
		return fmt.Errorf("%w: a second hello (the agent restarted)", agentproto.ErrMalformed)
	}
	if len(c.calls) > 0 {
		return fmt.Errorf("%w: the agent said hello again with %d calls in flight", agentproto.ErrMalformed, len(c.calls))
	}
	if err := agentproto.Decode(f, &c.rehelloMsg); err != nil {
		return err
	}
	close(c.rehello)
	return nil
}

func write(w io.Writer, p []byte) {
	if w != nil {
		w.Write(p)
	}
}

// checkArgs refuses a command or environment entry longer than the guest
// can exec, before the request is sent.
func checkArgs(command string, env []string) error {
	if len(command) > agentproto.MaxArg {
		return fmt.Errorf("%w: the command is %d bytes, over the %d bytes Linux takes as the argument of sh -c; "+
			"put a long script in a file (copy it in with copy_from_host) or feed data on standard input",
			ErrTooLarge, len(command), agentproto.MaxArg)
	}
	for _, kv := range env {
		if len(kv) > agentproto.MaxArg {
			name, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("%w: the environment variable %.100s is %d bytes, over the %d bytes Linux takes in one",
				ErrTooLarge, name, len(kv), agentproto.MaxArg)
		}
	}
	return nil
}

// start registers a call and sends its request. A request too large for a
// frame is refused here: sending it would break the channel for every call.
func (c *Client) start(req agentproto.Request, cl *call) (uint32, error) {
	payload := agentproto.Encode(req)
	if len(payload) > agentproto.MaxPayload {
		return 0, fmt.Errorf("%w: the %s request is %d bytes as JSON, over the agent channel's limit of %d bytes per request; "+
			"put a long script in a file (copy it in with copy_from_host) or feed data on standard input",
			ErrTooLarge, req.Op, len(payload), agentproto.MaxPayload)
	}
	cl.result = make(chan agentproto.Result, 1)
	cl.in = agentproto.NewWindow()
	id := c.nextID.Add(1)
	cl.id = id
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.calls[id] = cl
	c.mu.Unlock()
	if err := c.w.WriteFrame(agentproto.TRequest, id, payload); err != nil {
		c.fail(fmt.Errorf("%w: %w", ErrClosed, err))
		return 0, c.Err()
	}
	return id, nil
}

// await waits for the call's Result. When ctx ends first, the agent is told
// to cancel the work and ctx's error is returned without waiting further.
func (c *Client) await(ctx context.Context, id uint32, cl *call) (agentproto.Result, error) {
	select {
	case res, ok := <-cl.result:
		if !ok {
			return res, c.Err()
		}
		return res, nil
	case <-ctx.Done():
		c.w.WriteFrame(agentproto.TCancel, id, nil)
		return agentproto.Result{}, ctx.Err()
	}
}

// ExecIO connects a command's standard streams. Nil fields mean no input and
// discarded output. Stdout and Stderr are written from the channel's reading
// goroutine: they must not block.
type ExecIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Exec runs a command in the guest and waits for it.
func (c *Client) Exec(ctx context.Context, req agentproto.Exec, stdio ExecIO) (agentproto.Result, error) {
	if err := checkArgs(req.Command, req.Env); err != nil {
		return agentproto.Result{}, err
	}
	req.Stdin = stdio.Stdin != nil
	cl := &call{stdout: stdio.Stdout, stderr: stdio.Stderr}
	id, err := c.start(agentproto.Request{Op: agentproto.OpExec, Exec: &req}, cl)
	if err != nil {
		return agentproto.Result{}, err
	}
	if stdio.Stdin != nil {
		go c.sendStdin(id, stdio.Stdin, cl.in)
	}
	return c.await(ctx, id, cl)
}

// sendStdin sends r as the guest reads it (at most a window ahead), until
// it ends or the command does.
func (c *Client) sendStdin(id uint32, r io.Reader, win *agentproto.Window) {
	if _, err := io.Copy(c.w.WindowedStream(agentproto.TStdin, id, win), r); !errors.Is(err, agentproto.ErrWindowClosed) {
		c.w.WriteFrame(agentproto.TStdinEOF, id, nil)
	}
}

// Wait asks the agent to wait for a condition.
func (c *Client) Wait(ctx context.Context, w agentproto.Wait) (agentproto.Result, error) {
	if err := checkArgs(w.Command, nil); err != nil {
		return agentproto.Result{}, err
	}
	cl := &call{}
	id, err := c.start(agentproto.Request{Op: agentproto.OpWait, Wait: &w}, cl)
	if err != nil {
		return agentproto.Result{}, err
	}
	return c.await(ctx, id, cl)
}

// Power asks the agent to power off or reboot the guest. It returns when the
// agent has accepted; the machine goes down right after.
func (c *Client) Power(ctx context.Context, op agentproto.Op) error {
	return c.do(ctx, agentproto.Request{Op: op})
}

// do sends a request that carries no data and waits for its result.
func (c *Client) do(ctx context.Context, req agentproto.Request) error {
	cl := &call{}
	id, err := c.start(req, cl)
	if err != nil {
		return err
	}
	res, err := c.await(ctx, id, cl)
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	return err
}

// CopyIn copies the host file or tree src to dst in the guest.
func (c *Client) CopyIn(ctx context.Context, src, dst string) error {
	cl := &call{}
	id, err := c.start(agentproto.Request{Op: agentproto.OpCopyIn, Path: dst}, cl)
	if err != nil {
		return err
	}
	packErr := make(chan error, 1)
	go func() {
		err := treecopy.Pack(c.w.WindowedStream(agentproto.TData, id, cl.in), src)
		c.w.WriteFrame(agentproto.TDataEOF, id, nil)
		packErr <- err
	}()
	res, err := c.await(ctx, id, cl)
	if err != nil {
		return err
	}
	if err := <-packErr; err != nil {
		return err
	}
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return nil
}

// CopyOut copies the guest file or tree src to dst on the host.
func (c *Client) CopyOut(ctx context.Context, src, dst string) error {
	cl := &call{}
	cl.data = agentproto.NewAckQueue(func(n int) { c.w.WriteFrame(agentproto.TAck, cl.id, agentproto.AckPayload(n)) })
	id, err := c.start(agentproto.Request{Op: agentproto.OpCopyOut, Path: src}, cl)
	if err != nil {
		return err
	}
	unpackErr := make(chan error, 1)
	go func() {
		err := treecopy.Unpack(cl.data, dst)
		io.Copy(io.Discard, cl.data)
		unpackErr <- err
	}()
	res, err := c.await(ctx, id, cl)
	if err != nil {
		cl.data.Close(err)
		<-unpackErr
		return err
	}
	uerr := <-unpackErr
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return uerr
}

// Network configures the guest's NICs and /etc/hosts.
func (c *Client) Network(ctx context.Context, n agentproto.Network) error {
	return c.do(ctx, agentproto.Request{Op: agentproto.OpNetwork, Net: &n})
}

// Services starts and supervises the given services in the guest.
func (c *Client) Services(ctx context.Context, s []agentproto.Service) error {
	return c.do(ctx, agentproto.Request{Op: agentproto.OpServices, Services: s})
}

// Units hands a systemd guest its services (rendered as units there), its
// unit files and the units to enable. The agent installs them and, once it
// has answered, hands PID 1 to systemd, which starts multi-user.target and
// the agent again as a unit: Handover waits for that agent's hello. No
// other call may be made in between.
func (c *Client) Units(ctx context.Context, s []agentproto.Service, units []agentproto.UnitFile, enable []string) error {
	c.mu.Lock()
	if c.rehello == nil {
		c.rehello = make(chan struct{})
	}
	c.mu.Unlock()
	return c.do(ctx, agentproto.Request{Op: agentproto.OpServices, Services: s, Units: units, Enable: enable})
}

// Handover waits, after Units, for the hello of the agent systemd started,
// which serves the same session from then on, and returns it.
func (c *Client) Handover(ctx context.Context) (agentproto.Hello, error) {
	c.mu.Lock()
	rehello := c.rehello
	c.mu.Unlock()
	if rehello == nil {
		return agentproto.Hello{}, errors.New("wait for the agent's handover to systemd: no units were sent")
	}
	select {
	case <-rehello:
		return c.rehelloMsg, nil
	case <-c.done:
		return agentproto.Hello{}, c.Err()
	case <-ctx.Done():
		return agentproto.Hello{}, ctx.Err()
	}
}

// TTYText asks the agent for the text of virtual terminal vt; the Result's
// Output holds it.
func (c *Client) TTYText(ctx context.Context, vt int) (agentproto.Result, error) {
	cl := &call{}
	id, err := c.start(agentproto.Request{Op: agentproto.OpTTYText, VT: vt}, cl)
	if err != nil {
		return agentproto.Result{}, err
	}
	return c.await(ctx, id, cl)
}

// XWindows asks the agent for the names of the windows on X display
// display (":0" when empty); the Result's Output holds them, one a line.
func (c *Client) XWindows(ctx context.Context, display string) (agentproto.Result, error) {
	cl := &call{}
	id, err := c.start(agentproto.Request{Op: agentproto.OpXWindows, Display: display}, cl)
	if err != nil {
		return agentproto.Result{}, err
	}
	return c.await(ctx, id, cl)
}
