package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/pty"
)

// fakeLab is a Backend with two machines: "server" up, "client" failed.
// Its shell runs one of a few commands against the streams it is given.
type fakeLab struct {
	mu      sync.Mutex
	resizes []pty.Size
	signals []string
	opts    machine.ShellOptions

	console *fakeConsole
}

func newFakeLab() *fakeLab {
	return &fakeLab{console: &fakeConsole{backlog: "login: ", in: make(chan []byte, 16), live: make(chan []byte, 16), closed: make(chan struct{})}}
}

func (f *fakeLab) Machines() []MachineStatus {
	return []MachineStatus{
		{Name: "client", State: machine.StatusFailed, Error: "machine is down: kernel panic \"oops\""},
		{Name: "server", State: machine.StatusUp,
			Interfaces: []Interface{{VLAN: 1, Name: "eth1", Addrs: []string{"192.168.1.2/24"}}},
			Forwards:   []Forward{{HostPort: 8080, GuestPort: 80}}, VNC: "/run/web/server/vnc.sock"},
	}
}

func (f *fakeLab) Shell(ctx context.Context, name string, o machine.ShellOptions) (machine.ShellResult, error) {
	f.mu.Lock()
	f.opts = o
	f.mu.Unlock()
	switch strings.Join(o.Command, " ") {
	case "upper": // stdin to stdout in capitals, a note on stderr, exit 3
		b, _ := io.ReadAll(o.Stdin)
		o.Stdout.Write(bytes.ToUpper(b))
		o.Stderr.Write([]byte("done\n"))
		return machine.ShellResult{Status: 3}, nil
	case "wait": // records resizes and signals until SIGINT
		for {
			select {
			case sz := <-o.Resize:
				f.mu.Lock()
				f.resizes = append(f.resizes, sz)
				f.mu.Unlock()
				fmt.Fprintf(o.Stdout, "size %dx%d\n", sz.Rows, sz.Cols)
			case sig := <-o.Signals:
				f.mu.Lock()
				f.signals = append(f.signals, sig.String())
				f.mu.Unlock()
				if sig == syscall.SIGINT {
					return machine.ShellResult{Status: 130, Signal: "SIGINT"}, nil
				}
			case <-ctx.Done():
				return machine.ShellResult{}, ctx.Err()
			}
		}
	case "big": // 1 MiB of output in one write
		o.Stdout.Write(bytes.Repeat([]byte("z"), 1<<20))
		return machine.ShellResult{}, nil
	}
	return machine.ShellResult{}, fmt.Errorf("%s: unknown command %q", name, o.Command)
}

func (f *fakeLab) Console(name string) (io.ReadWriteCloser, error) {
	f.console.mu.Lock()
	f.console.sentBacklog = false
	f.console.mu.Unlock()
	return f.console, nil
}

// fakeConsole gives its backlog, then what arrives on live; writes go to in.
type fakeConsole struct {
	mu          sync.Mutex
	backlog     string
	sentBacklog bool
	in, live    chan []byte
	closed      chan struct{}
	closeOnce   sync.Once
}

func (c *fakeConsole) Read(p []byte) (int, error) {
	c.mu.Lock()
	if !c.sentBacklog {
		c.sentBacklog = true
		c.mu.Unlock()
		return copy(p, c.backlog), nil
	}
	c.mu.Unlock()
	select {
	case b := <-c.live:
		return copy(p, b), nil
	case <-c.closed:
		return 0, io.EOF
	}
}

func (c *fakeConsole) Write(p []byte) (int, error) {
	if string(p) == "full" {
		return 0, errors.New("server: write to the serial console: the guest is not reading")
	}
	c.in <- append([]byte(nil), p...)
	return len(p), nil
}

func (c *fakeConsole) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// serve starts the fake lab called name in a fresh runtime directory
// (unless one is set already by the test).
func serve(t *testing.T, name string, b Backend) *Server {
	t.Helper()
	if os.Getenv("XDG_RUNTIME_DIR") == "" || !strings.HasPrefix(os.Getenv("XDG_RUNTIME_DIR"), os.TempDir()) {
		t.Setenv("XDG_RUNTIME_DIR", shortTemp(t))
	}
	s, err := Listen(name, LabInfo{File: "/src/" + name + ".star"}, b, t.Logf)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// shortTemp is a temporary directory with a short path: a socket's path
// must fit in 108 bytes.
func shortTemp(t *testing.T) string {
	dir, err := os.MkdirTemp("", "vc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, name string) *Client {
	t.Helper()
	cl, err := Dial(ctxT(t), name, t.Logf)
	if err != nil {
		t.Fatalf("dial %q: %v", name, err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestHelloAndStatus(t *testing.T) {
	serve(t, "web", newFakeLab())
	cl := dial(t, "")
	if cl.Lab != "web" || !strings.HasPrefix(cl.Server, "vmlab ") {
		t.Errorf("hello: got lab %q server %q, want lab \"web\" and \"vmlab VERSION\"", cl.Lab, cl.Server)
	}
	for range 2 { // a connection takes several status requests
		st, err := cl.Status(ctxT(t))
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.Name != "web" || st.File != "/src/web.star" || st.Pid != os.Getpid() || st.Started.IsZero() {
			t.Errorf("status: got %+v, want lab web from /src/web.star, our pid, a start time", st.LabInfo)
		}
		if len(st.Machines) != 2 || st.Machines[1].State != machine.StatusUp ||
			st.Machines[1].Interfaces[0].Addrs[0] != "192.168.1.2/24" || st.Machines[1].Forwards[0].HostPort != 8080 ||
			st.Machines[1].VNC != "/run/web/server/vnc.sock" {
			t.Errorf("status: got machines %+v, want client failed and server up with its address, forward and VNC socket", st.Machines)
		}
	}
}

// rawHello connects without the client and sends hello with version v.
func rawHello(t *testing.T, s *Server, v int) Message {
	t.Helper()
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := newConn(c)
	if err := pc.send(Message{Type: "hello", Version: v}); err != nil {
		t.Fatal(err)
	}
	m, err := pc.readMessage()
	if err != nil {
		t.Fatalf("read the hello's answer: %v", err)
	}
	return m
}

func TestVersionMismatch(t *testing.T) {
	s := serve(t, "web", newFakeLab())
	m := rawHello(t, s, Version+1)
	if m.Type != "error" || m.Code != CodeVersion || len(m.Versions) != 1 || m.Versions[0] != Version {
		t.Errorf("got %+v, want an error with code %q and versions [%d]", m, CodeVersion, Version)
	}
	if m := rawHello(t, s, Version); m.Type != "hello" || m.Version != Version {
		t.Errorf("got %+v, want a hello with version %d", m, Version)
	}
}

func TestMalformedFrameEndsConnection(t *testing.T) {
	s := serve(t, "web", newFakeLab())
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{'X', 0xff, 0xff, 0xff, 0xff})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("got %v, want the server to close the connection", err)
	}
}

func TestShellPipes(t *testing.T) {
	serve(t, "web", newFakeLab())
	cl := dial(t, "web")
	var stdout, stderr bytes.Buffer
	res, err := cl.Shell(ctxT(t), "server", machine.ShellOptions{Command: []string{"upper"},
		Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("shell: %v", err)
	}
	if res.Status != 3 || stdout.String() != "HELLO\n" || stderr.String() != "done\n" {
		t.Errorf("got status %d stdout %q stderr %q, want 3, \"HELLO\\n\", \"done\\n\"", res.Status, stdout.String(), stderr.String())
	}
}

func TestShellLargeOutput(t *testing.T) {
	serve(t, "web", newFakeLab())
	cl := dial(t, "web")
	var stdout bytes.Buffer
	if _, err := cl.Shell(ctxT(t), "server", machine.ShellOptions{Command: []string{"big"}, Stdout: &stdout}); err != nil {
		t.Fatalf("shell: %v", err)
	}
	if stdout.Len() != 1<<20 {
		t.Errorf("got %d bytes, want %d", stdout.Len(), 1<<20)
	}
}

func TestShellTTYResizeSignal(t *testing.T) {
	f := newFakeLab()
	serve(t, "web", f)
	cl := dial(t, "web")
	resize := make(chan pty.Size)
	sigs := make(chan os.Signal)
	outR, outW := io.Pipe()
	type result struct {
		res machine.ShellResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cl.Shell(ctxT(t), "server", machine.ShellOptions{Command: []string{"wait"}, TTY: true,
			Size: pty.Size{Rows: 30, Cols: 100}, Env: map[string]string{"TERM": "xterm"},
			Resize: resize, Signals: sigs, Stdout: outW})
		outW.Close()
		done <- result{res, err}
	}()
	resize <- pty.Size{Rows: 40, Cols: 120}
	line := make([]byte, len("size 40x120\n"))
	if _, err := io.ReadFull(outR, line); err != nil || string(line) != "size 40x120\n" {
		t.Fatalf("after a resize: got %q (%v), want the command to see 40x120", line, err)
	}
	sigs <- syscall.SIGINT
	r := <-done
	if r.err != nil || r.res.Status != 130 || r.res.Signal != "SIGINT" {
		t.Errorf("got %+v, %v; want status 130 by SIGINT", r.res, r.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.opts.TTY || f.opts.Size != (pty.Size{Rows: 30, Cols: 100}) || f.opts.Env["TERM"] != "xterm" {
		t.Errorf("the lab got TTY %v size %v env %v, want a 30x100 TTY with TERM=xterm", f.opts.TTY, f.opts.Size, f.opts.Env)
	}
}

// TestShellEndedByStoppingLab: a shell whose command the lab's stop ends
// (vmlab up's Ctrl-C shuts the machines down, killing it) gets an error
// that says so, not an exit status with no word (before: exit 137,
// silence).
func TestShellEndedByStoppingLab(t *testing.T) {
	f := newFakeLab()
	s := serve(t, "web", f)
	cl := dial(t, "web")
	outR, outW := io.Pipe()
	resize := make(chan pty.Size, 1)
	resize <- pty.Size{Rows: 1, Cols: 2}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		_, err := cl.Shell(ctxT(t), "server", machine.ShellOptions{Command: []string{"wait"}, Resize: resize, Signals: sigs, Stdout: outW})
		done <- err
	}()
	io.ReadFull(outR, make([]byte, len("size 1x2\n"))) // the command runs
	s.Stopping("Ctrl-C in vmlab up")
	sigs <- syscall.SIGINT // as the machine's shutdown ends it
	err := <-done
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeStopping || !strings.Contains(e.Message, "lab web is stopping (Ctrl-C in vmlab up)") {
		t.Errorf("got %v, want a %q error naming the lab and why", err, CodeStopping)
	}
}

// TestShellSignalPastUnreadInput: a command that reads no input still gets
// the signals and resizes sent after input (before: the server's reader
// blocked writing that input, and Ctrl-C never reached the command).
func TestShellSignalPastUnreadInput(t *testing.T) {
	f := newFakeLab()
	serve(t, "web", f)
	cl := dial(t, "web")
	outR, outW := io.Pipe()
	resize := make(chan pty.Size, 1)
	resize <- pty.Size{Rows: 1, Cols: 2}
	sigs := make(chan os.Signal, 1)
	type result struct {
		res machine.ShellResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cl.Shell(ctxT(t), "server", machine.ShellOptions{Command: []string{"wait"},
			Stdin: bytes.NewReader(bytes.Repeat([]byte("x"), 256<<10)), Resize: resize, Signals: sigs, Stdout: outW})
		done <- result{res, err}
	}()
	io.ReadFull(outR, make([]byte, len("size 1x2\n"))) // the command runs
	sigs <- syscall.SIGINT
	select {
	case r := <-done:
		if r.err != nil || r.res.Signal != "SIGINT" {
			t.Errorf("got %+v, %v; want the command ended by SIGINT", r.res, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("SIGINT did not reach a command that reads no input")
	}
}

func TestShellClientHangupStopsCommand(t *testing.T) {
	f := newFakeLab()
	s := serve(t, "web", f)
	cl := dial(t, "web")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	outR, outW := io.Pipe()
	resize := make(chan pty.Size, 1)
	resize <- pty.Size{Rows: 1, Cols: 2}
	go func() {
		_, err := cl.Shell(ctx, "server", machine.ShellOptions{Command: []string{"wait"}, Resize: resize, Stdout: outW})
		done <- err
	}()
	io.ReadFull(outR, make([]byte, len("size 1x2\n"))) // the command runs
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	// The fake's command ends with its context: Close would hang otherwise.
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server still waits for a shell whose client hung up")
	}
}

func TestShellErrors(t *testing.T) {
	serve(t, "web", newFakeLab())
	for _, tc := range []struct {
		name, machine, code string
		want                []string
	}{
		{"not declared", "db", CodeNoMachine, []string{`lab "web" has no machine "db"`, "its machines: client, server"}},
		{"failed", "client", CodeNotUp, []string{"machine client of lab \"web\" is failed", "kernel panic", "vmlab console -lab web client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, "web")
			_, err := cl.Shell(ctxT(t), tc.machine, machine.ShellOptions{Command: []string{"upper"}})
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("got %v, want an error with code %q", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("got %q, want it to say %q", e.Message, w)
				}
			}
		})
	}
}

func TestConsoleBacklogLiveWrite(t *testing.T) {
	f := newFakeLab()
	serve(t, "web", f)
	cl := dial(t, "web")
	ctx, cancel := context.WithCancel(ctxT(t))
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	var notices []string
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- cl.Console(ctx, "server", inR, outW, func(s string) { mu.Lock(); notices = append(notices, s); mu.Unlock() })
		outW.Close()
	}()
	read := func(want string) {
		t.Helper()
		b := make([]byte, len(want))
		if _, err := io.ReadFull(outR, b); err != nil || string(b) != want {
			t.Fatalf("console: got %q (%v), want %q", b, err, want)
		}
	}
	read("login: ")
	f.console.live <- []byte("live bytes")
	read("live bytes")
	inW.Write([]byte("root\n"))
	select {
	case got := <-f.console.in:
		if string(got) != "root\n" {
			t.Errorf("the guest got %q, want %q", got, "root\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("what the client typed never reached the console")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("console after the client's context ended: got %v, want nil", err)
	}
}

func TestConsoleWriteRefusedIsNotice(t *testing.T) {
	f := newFakeLab()
	serve(t, "web", f)
	cl := dial(t, "web")
	notice := make(chan string, 1)
	go cl.Console(ctxT(t), "server", strings.NewReader("full"), io.Discard, func(s string) { notice <- s })
	select {
	case n := <-notice:
		if !strings.Contains(n, "not reading") {
			t.Errorf("got notice %q, want the write's error", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notice for a write the guest did not take")
	}
}

func TestPeerOfAnotherUserRefused(t *testing.T) {
	old := checkUID
	checkUID = func(uid, pid int) error {
		return fmt.Errorf("peer pid %d runs as uid %d; only uid 4242 may use this lab", pid, uid)
	}
	t.Cleanup(func() { checkUID = old })
	serve(t, "web", newFakeLab())
	_, err := Dial(ctxT(t), "web", t.Logf)
	if err == nil || !strings.Contains(err.Error(), "only uid 4242 may use this lab") {
		t.Errorf("got %v, want the refusal", err)
	}
}

func TestDownWaitsForClose(t *testing.T) {
	s := serve(t, "web", newFakeLab())
	cl := dial(t, "web")
	done := make(chan error, 1)
	go func() { done <- cl.Down(ctxT(t)) }()
	select {
	case <-s.DownRequested():
	case <-time.After(10 * time.Second):
		t.Fatal("the server never heard the down request")
	}
	select {
	case err := <-done:
		t.Fatalf("down returned (%v) before the lab closed", err)
	default:
	}
	s.Close()
	if err := <-done; err != nil {
		t.Errorf("down: %v", err)
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("the socket is still there after Close (%v)", err)
	}
	if _, err := Dial(ctxT(t), "web", nil); err == nil {
		t.Error("dial after Close: want an error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// TestWireExample: the bytes docs/control-protocol.md shows for a hello.
func TestWireExample(t *testing.T) {
	var b bytes.Buffer
	msg := []byte(`{"type":"hello","version":1}`)
	if err := writeFrame(&b, FrameJSON, msg); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x4A, 0, 0, 0, 0x1C}, msg...)
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("got % x, want % x", b.Bytes(), want)
	}
	got, err := json.Marshal(Message{Type: "hello", Version: Version})
	if err != nil || string(got) != string(msg) {
		t.Errorf("the client's hello encodes as %s (%v), want %s", got, err, msg)
	}
}

// TestShellBadControlIsNotice: a bad signal while a shell runs is a
// notice, and the shell goes on (a client in another language would
// otherwise not know whether an error ended it).
func TestShellBadControlIsNotice(t *testing.T) {
	s := serve(t, "web", newFakeLab())
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	pc := newConn(c)
	pc.send(Message{Type: "hello", Version: Version})
	if m, err := pc.readMessage(); err != nil || m.Type != "hello" {
		t.Fatalf("hello: %+v, %v", m, err)
	}
	pc.send(Message{Type: "shell", Machine: "server", Command: []string{"wait"}})
	pc.send(Message{Type: "signal", Signal: "SIGFOO"})
	if m, err := pc.readMessage(); err != nil || m.Type != "notice" || !strings.Contains(m.Message, `signal "SIGFOO"`) {
		t.Fatalf("after a bad signal: got %+v, %v; want a notice naming it", m, err)
	}
	pc.send(Message{Type: "signal", Signal: "SIGINT"})
	m, err := pc.readMessage()
	if err != nil || m.Type != "exit" || m.ExitStatus == nil || *m.ExitStatus != 130 {
		t.Errorf("after SIGINT: got %+v, %v; want exit 130", m, err)
	}
}
