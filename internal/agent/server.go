package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// serve finds the port, says hello and serves until the channel fails.
func serve(stages []agentproto.Stage) {
	port := heldPort // opened at the snapshot point (snapshot.go)
	if port == nil {
		var err error
		if port, err = openPort(agentproto.PortName, 10*time.Second); err != nil {
			fatal(err)
		}
	}
	stages = append(stages, agentproto.Stage{Name: "serve", Uptime: uptime()})
	var uts unix.Utsname
	unix.Uname(&uts)
	hello := agentproto.Hello{
		Version: agentproto.Version,
		Kernel:  unix.ByteSliceToString(uts.Release[:]),
		Stages:  stages,
	}
	err := Serve(context.Background(), port, hello)
	fatal(fmt.Errorf("serve: %w", err))
}

// openPort opens the virtio-serial port called name. Its device node appears
// shortly after the virtio_console module loads, so it is looked for every
// millisecond until timeout.
func openPort(name string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		links, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, l := range links {
			b, err := os.ReadFile(l)
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(l))
			f, err := os.OpenFile(dev, os.O_RDWR, 0)
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open port %s: %w", dev, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open port %s: no such virtio-serial port after %v", name, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Serve answers requests on rw until it fails or ctx ends. It sends hello
// first. Each request runs in its own goroutine; Serve waits for them before
// it returns.
func Serve(ctx context.Context, rw io.ReadWriter, hello agentproto.Hello) error {
	ctx, cancel := context.WithCancel(ctx)
	s := &server{
		ctx:     ctx,
		w:       agentproto.NewWriter(rw),
		streams: make(map[uint32]*stream),
	}
	s.services.notify = s.notifyServiceExit
	defer s.wg.Wait()
	defer cancel()
	if err := s.w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello)); err != nil {
		return err
	}
	r := agentproto.NewReader(rw)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if err := s.dispatch(ctx, f); err != nil {
			return err
		}
	}
}

type server struct {
	ctx context.Context // the server's lifetime: services run until it ends
	w   *agentproto.Writer
	wg  sync.WaitGroup

	mu      sync.Mutex
	streams map[uint32]*stream

	services services // declared services; they run as long as ctx
}

// stream is a request in progress.
type stream struct {
	in     *agentproto.Queue  // Stdin or Data frames from the host, acknowledged as read
	out    *agentproto.Window // room for the Data frames of a copy-out, or windowed output
	ctl    controls           // Resize and Signal frames for a command
	cancel context.CancelFunc
}

func (s *server) dispatch(ctx context.Context, f agentproto.Frame) error {
	if f.Type == agentproto.TRequest {
		return s.start(ctx, f)
	}
	s.mu.Lock()
	st := s.streams[f.Stream]
	s.mu.Unlock()
	if st == nil {
		// The stream ended already; frames in flight for it are dropped.
		return nil
	}
	switch f.Type {
	case agentproto.TStdin, agentproto.TData:
		st.in.Push(f.Payload)
	case agentproto.TStdinEOF, agentproto.TDataEOF:
		st.in.Close(nil)
	case agentproto.TCancel:
		st.cancel()
	case agentproto.TResize:
		rows, cols, err := agentproto.DecodeResize(f)
		if err != nil {
			return err
		}
		st.ctl.onResize(rows, cols)
	case agentproto.TSignal:
		name, err := agentproto.DecodeSignal(f)
		if err != nil {
			return err
		}
		sig, err := signalNumber(name)
		if err != nil {
			return fmt.Errorf("%w: %v", agentproto.ErrMalformed, err)
		}
		st.ctl.onSignal(sig)
	case agentproto.TAck:
		n, err := agentproto.DecodeAck(f)
		if err != nil {
			return err
		}
		st.out.Ack(n)
	default:
		return fmt.Errorf("%w: unexpected %v frame from the host", agentproto.ErrMalformed, f.Type)
	}
	return nil
}

func (s *server) start(ctx context.Context, f agentproto.Frame) error {
	var req agentproto.Request
	if err := agentproto.Decode(f, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	id := f.Stream
	st := &stream{out: agentproto.NewWindow(), cancel: cancel}
	st.in = agentproto.NewAckQueue(func(n int) { s.w.WriteFrame(agentproto.TAck, id, agentproto.AckPayload(n)) })
	// A copy-out waiting for room ends with its stream (canceled by the
	// host, or the server stopping).
	context.AfterFunc(ctx, st.out.Close)
	s.mu.Lock()
	if s.streams[f.Stream] != nil {
		s.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: stream %d opened twice", agentproto.ErrMalformed, f.Stream)
	}
	s.streams[f.Stream] = st
	s.mu.Unlock()
	s.wg.Go(func() {
		start := time.Now()
		res := s.handle(ctx, f.Stream, req, st)
		res.Elapsed = time.Since(start)
		s.mu.Lock()
		delete(s.streams, f.Stream)
		s.mu.Unlock()
		st.in.Close(errors.New("stream ended"))
		cancel()
		s.w.WriteFrame(agentproto.TResult, f.Stream, encodeResult(res))
		if res.Error == "" && req.Op == agentproto.OpServices && handover != nil {
			// The write returns once the host has the frame
			// (virtio-serial waits for it), and the exec closes the port:
			// the unit agent opens it again and says hello.
			fatal(handover())
		}
		if res.Error == "" && (req.Op == agentproto.OpPowerOff || req.Op == agentproto.OpReboot) {
			powerOff(&s.services, req.Op == agentproto.OpReboot)
		}
	})
	return nil
}

func (s *server) handle(ctx context.Context, id uint32, req agentproto.Request, st *stream) agentproto.Result {
	switch {
	case req.Op == agentproto.OpExec && req.Exec != nil:
		return s.exec(ctx, id, req.Exec, st)
	case req.Op == agentproto.OpWait && req.Wait != nil && req.Wait.Kind == agentproto.WaitTTY:
		return waitTTY(ctx, *req.Wait)
	case req.Op == agentproto.OpTTYText:
		return ttyText(req.VT)
	case req.Op == agentproto.OpWait && req.Wait != nil && req.Wait.Kind == agentproto.WaitKeys:
		return waitKeys(ctx, keyboard, *req.Wait)
	case req.Op == agentproto.OpWait && req.Wait != nil && req.Wait.Kind == agentproto.WaitX:
		return waitX(ctx, *req.Wait)
	case req.Op == agentproto.OpWait && req.Wait != nil && req.Wait.Kind == agentproto.WaitWindow:
		return waitWindow(ctx, *req.Wait)
	case req.Op == agentproto.OpXWindows:
		return xWindows(ctx, req.Display)
	case req.Op == agentproto.OpWait && req.Wait != nil && req.Wait.Kind == agentproto.WaitUnit:
		return s.waitUnit(ctx, *req.Wait)
	case req.Op == agentproto.OpWait && req.Wait != nil:
		w := *req.Wait
		w.Path = guestPath(w.Path, w.User)
		return wait(ctx, &w)
	case req.Op == agentproto.OpCopyIn && req.Path != "":
		return copyIn(guestPath(req.Path, ""), st.in)
	case req.Op == agentproto.OpCopyOut && req.Path != "":
		return s.copyOut(id, guestPath(req.Path, ""), st.out)
	case req.Op == agentproto.OpNetwork && req.Net != nil:
		if !IsGuest() {
			return agentproto.Result{Error: "network requests are served only inside a guest"}
		}
		if err := configureNetwork(req.Net); err != nil {
			return agentproto.Result{Error: err.Error()}
		}
		return agentproto.Result{}
	case req.Op == agentproto.OpServices && handover != nil:
		// A systemd guest's units: start() hands over to systemd once
		// this answer is sent.
		if _, err := installUnits("/", req.Services, req.Units, req.Enable); err != nil {
			return agentproto.Result{Error: err.Error()}
		}
		return agentproto.Result{}
	case req.Op == agentproto.OpServices && unitMode():
		return agentproto.Result{Error: "the machine's units were installed before systemd started: " +
			"start a unit with systemctl (start_job) instead"}
	case req.Op == agentproto.OpServices:
		// Services outlive the request: they live as long as the server.
		if err := s.services.start(s.ctx, req.Services); err != nil {
			return agentproto.Result{Error: err.Error()}
		}
		return agentproto.Result{}
	case req.Op == agentproto.OpSetup && req.Setup != nil:
		return s.setup(ctx, req.Setup, st.in)
	case req.Op == agentproto.OpPowerOff, req.Op == agentproto.OpReboot:
		if !IsGuest() {
			return agentproto.Result{Error: "power requests are served only inside a guest"}
		}
		return agentproto.Result{}
	}
	return agentproto.Result{Error: fmt.Sprintf("bad request: op %q without its arguments", req.Op)}
}

// notifyServiceExit tells the host, unasked, how a service's run ended,
// and says it on the console too, so the machine's console log has it.
func (s *server) notifyServiceExit(e agentproto.ServiceExit) {
	if IsGuest() {
		logf("%v", e)
	}
	s.w.WriteFrame(agentproto.TNotice, 0, agentproto.Encode(agentproto.Notice{ServiceExit: &e}))
}

// encodeResult encodes res for its frame. A result too large for one (a
// service's last lines, up to 20 of 1 MiB each) loses its output and says
// so: a Result that cannot be sent would leave the host waiting until its
// deadline.
func encodeResult(res agentproto.Result) []byte {
	b := agentproto.Encode(res)
	if len(b) <= agentproto.MaxPayload {
		return b
	}
	dropped := len(res.Output)
	res.Output = ""
	res.Error = strings.TrimSpace(fmt.Sprintf("%s (the %d bytes of output were dropped: over the %d-byte frame limit)",
		res.Error, dropped, agentproto.MaxPayload))
	return agentproto.Encode(res)
}
