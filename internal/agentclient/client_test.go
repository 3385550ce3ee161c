package agentclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// socketpair returns two connected unix stream sockets, like the two ends of
// the virtio-serial channel.
func socketpair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// newPair serves the agent on the host, over a socketpair: the same code that
// runs in the guest, minus init. Commands run on the host, in temp dirs.
func newPair(t *testing.T) *agentclient.Client {
	t.Helper()
	host, guest := socketpair(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		agent.Serve(ctx, guest, agentproto.Hello{Version: agentproto.Version})
		close(served)
	}()
	c := agentclient.New(host)
	t.Cleanup(func() {
		c.Close()
		cancel()
		guest.Close()
		<-served
	})
	if _, err := c.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, c *agentclient.Client, cmd string) (agentproto.Result, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	res, err := c.Exec(context.Background(), agentproto.Exec{Command: cmd, Timeout: 30 * time.Second},
		agentclient.ExecIO{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res, stdout.String(), stderr.String()
}

func TestExec(t *testing.T) {
	c := newPair(t)
	tests := []struct {
		name, cmd      string
		exit           int
		stdout, stderr string
	}{
		{"true", "true", 0, "", ""},
		{"separate streams", "echo out; echo err >&2", 0, "out\n", "err\n"},
		{"exit status", "exit 3", 3, "", ""},
		{"env", "echo $HOME $USER", 0, "/root root\n", ""},
		{"background keeps output open", "sleep 5 & echo started", 0, "started\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, stdout, stderr := run(t, c, tt.cmd)
			if res.Exit != tt.exit || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("got exit %d, stdout %q, stderr %q; want %d, %q, %q",
					res.Exit, stdout, stderr, tt.exit, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestExecStdin(t *testing.T) {
	c := newPair(t)
	var out bytes.Buffer
	in := bytes.Repeat([]byte("line\x00\xff\n"), 50000)
	res, err := c.Exec(context.Background(), agentproto.Exec{Command: "cat"},
		agentclient.ExecIO{Stdin: bytes.NewReader(in), Stdout: &out})
	if err != nil || res.Exit != 0 {
		t.Fatalf("got %+v, %v", res, err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("got %d bytes back, want the %d sent", out.Len(), len(in))
	}
	// A command that never reads its stdin must not block the channel.
	res, err = c.Exec(context.Background(), agentproto.Exec{Command: "echo ignored"},
		agentclient.ExecIO{Stdin: bytes.NewReader(make([]byte, 4<<20))})
	if err != nil || res.Exit != 0 {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestExecBinaryOutput(t *testing.T) {
	c := newPair(t)
	// 8 MiB of every byte value, NULs and invalid UTF-8 included.
	var out bytes.Buffer
	res, err := c.Exec(context.Background(),
		agentproto.Exec{Command: "head -c 8388608 /dev/urandom | tee /dev/stderr"},
		agentclient.ExecIO{Stdout: &out, Stderr: &out})
	if err != nil || res.Exit != 0 {
		t.Fatalf("got %+v, %v", res, err)
	}
	if out.Len() != 2*8388608 {
		t.Errorf("got %d bytes, want %d", out.Len(), 2*8388608)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	c := newPair(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "survived")
	start := time.Now()
	res, err := c.Exec(context.Background(), agentproto.Exec{
		Command: fmt.Sprintf("(sleep 1; touch %s) & sleep 10", marker), Timeout: 200 * time.Millisecond},
		agentclient.ExecIO{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Signal != "killed" {
		t.Errorf("got %+v, want a timed-out result killed by a signal", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The background subshell was in the group: it must not create the marker.
	wres, err := c.Wait(context.Background(), agentproto.Wait{Kind: agentproto.WaitFile, Path: marker, Timeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !wres.TimedOut {
		t.Errorf("a process of the timed-out command's group survived it")
	}
}

func TestExecCancel(t *testing.T) {
	c := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx, agentproto.Exec{Command: "sleep 30"}, agentclient.ExecIO{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	// The channel is still usable.
	if res, out, _ := run(t, c, "echo ok"); res.Exit != 0 || out != "ok\n" {
		t.Errorf("after cancel: got %+v %q", res, out)
	}
}

func TestExecConcurrent(t *testing.T) {
	c := newPair(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			var out bytes.Buffer
			res, err := c.Exec(context.Background(), agentproto.Exec{Command: fmt.Sprintf("seq %d | sha256sum", i*100)},
				agentclient.ExecIO{Stdout: &out})
			var want strings.Builder
			for k := 1; k <= i*100; k++ {
				fmt.Fprintln(&want, k)
			}
			sum := fmt.Sprintf("%x  -\n", sha256.Sum256([]byte(want.String())))
			if err != nil || res.Exit != 0 || out.String() != sum {
				errs <- fmt.Errorf("command %d: got %+v %v %q, want %q", i, res, err, out.String(), sum)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWait(t *testing.T) {
	c := newPair(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := l.Addr().(*net.TCPAddr).Port
	closedL, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := closedL.Addr().(*net.TCPAddr).Port
	closedL.Close()
	defer l.Close()
	ul, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	os.WriteFile(filepath.Join(dir, "exists"), nil, 0o644)

	tests := []struct {
		name     string
		wait     agentproto.Wait
		timedOut bool
	}{
		{"file exists", agentproto.Wait{Kind: agentproto.WaitFile, Path: filepath.Join(dir, "exists")}, false},
		{"file missing", agentproto.Wait{Kind: agentproto.WaitFile, Path: filepath.Join(dir, "missing")}, true},
		{"port open", agentproto.Wait{Kind: agentproto.WaitPortOpen, Addr: "127.0.0.1", Port: open}, false},
		{"port closed", agentproto.Wait{Kind: agentproto.WaitPortClosed, Addr: "127.0.0.1", Port: closed}, false},
		{"port not closed", agentproto.Wait{Kind: agentproto.WaitPortClosed, Addr: "127.0.0.1", Port: open}, true},
		{"unix socket", agentproto.Wait{Kind: agentproto.WaitUnixSocket, Path: filepath.Join(dir, "sock")}, false},
		{"command ok", agentproto.Wait{Kind: agentproto.WaitCommandOK, Command: "test -e " + dir}, false},
		{"command never ok", agentproto.Wait{Kind: agentproto.WaitCommandOK, Command: "false"}, true},
		{"command fails", agentproto.Wait{Kind: agentproto.WaitCommandFails, Command: "false"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.wait.Timeout = 300 * time.Millisecond
			res, err := c.Wait(context.Background(), tt.wait)
			if err != nil || res.Error != "" {
				t.Fatalf("got %+v, %v", res, err)
			}
			if res.TimedOut != tt.timedOut {
				t.Errorf("got timed out %v after %d tries, want %v", res.TimedOut, res.Tries, tt.timedOut)
			}
		})
	}
}

// TestWaitLatency checks a wait returns soon after its condition starts to
// hold, not at the next coarse poll.
func TestWaitLatency(t *testing.T) {
	c := newPair(t)
	path := filepath.Join(t.TempDir(), "later")
	done := make(chan time.Time, 1)
	go func() {
		c.Wait(context.Background(), agentproto.Wait{Kind: agentproto.WaitFile, Path: path, Timeout: 10 * time.Second})
		done <- time.Now()
	}()
	// A round trip on the channel makes sure the wait request has been
	// read before the file exists (frames are handled in order).
	run(t, c, "true")
	created := time.Now()
	os.WriteFile(path, nil, 0o644)
	if d := (<-done).Sub(created); d > time.Second {
		t.Errorf("wait returned %v after the file appeared", d)
	}
}

func TestCopy(t *testing.T) {
	c := newPair(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("hello"), 0o640)
	guest := filepath.Join(t.TempDir(), "in")
	if err := c.CopyIn(context.Background(), src, guest); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back")
	if err := c.CopyOut(context.Background(), guest, back); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(back, "d", "f"))
	if err != nil || string(b) != "hello" {
		t.Errorf("got %q, %v; want %q", b, err, "hello")
	}
	if err := c.CopyOut(context.Background(), "/nonexistent/path", back+"2"); err == nil {
		t.Error("copying a missing guest path: got nil error")
	}
}

// TestMalformedFrame checks that garbage from the guest ends the channel with
// a clear error and releases calls in flight, instead of hanging them.
func TestMalformedFrame(t *testing.T) {
	host, guest := socketpair(t)
	defer guest.Close()
	c := agentclient.New(host)
	defer c.Close()
	w := agentproto.NewWriter(guest)
	w.WriteFrame(agentproto.THello, 0, agentproto.Encode(agentproto.Hello{Version: agentproto.Version}))
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), agentproto.Exec{Command: "true"}, agentclient.ExecIO{})
		result <- err
	}()
	agentproto.NewReader(guest).ReadFrame() // the request
	guest.Write([]byte("Kernel panic - not syncing: garbage on the port\n"))
	select {
	case err := <-result:
		if !errors.Is(err, agentclient.ErrClosed) || !errors.Is(err, agentproto.ErrMalformed) {
			t.Errorf("got %v, want an error wrapping ErrClosed and ErrMalformed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call in flight hung after a malformed frame")
	}
	if _, err := c.Exec(context.Background(), agentproto.Exec{Command: "true"}, agentclient.ExecIO{}); !errors.Is(err, agentclient.ErrClosed) {
		t.Errorf("a call after the channel broke: got %v, want ErrClosed", err)
	}
}

func TestServices(t *testing.T) {
	c := newPair(t)
	dir := t.TempDir()
	err := c.Services(context.Background(), []agentproto.Service{
		{Name: "plain", Command: "sleep 30"},
		{Name: "by-file", Command: "sleep 0.2; touch " + dir + "/up; sleep 30", ReadyFile: dir + "/up"},
		{Name: "by-log", Command: "echo starting; sleep 0.2; echo listening now; sleep 30", ReadyLog: "listening"},
		{Name: "dies", Command: "echo bad config >&2; exit 3"},
		{Name: "flaky", Command: "test -e " + dir + "/second || { touch " + dir + "/second; exit 1; }; sleep 30", Restart: "on-failure", ReadyFile: dir + "/second"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		wantErr string
	}{
		{"plain", ""}, {"by-file", ""}, {"by-log", ""}, {"flaky", ""},
		{"dies", "exit status 3 and will not be restarted"},
		{"ghost", "no service"},
		{"", "service dies exit status 3"}, // every service, as for default.target
	}
	for _, tt := range tests {
		res, err := c.Wait(context.Background(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: tt.name, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.TimedOut || !strings.Contains(res.Error, tt.wantErr) || (tt.wantErr == "") != (res.Error == "") {
			t.Errorf("%s: got %+v, want error %q", tt.name, res, tt.wantErr)
		}
		if tt.name == "dies" && !strings.Contains(res.Output, "bad config") {
			t.Errorf("dies: the output tail %q lacks the service's last words", res.Output)
		}
	}
}

// TestServiceExitNotices: a service that exits is told to the host unasked,
// with how it ended and its last lines, also when it is restarted.
func TestServiceExitNotices(t *testing.T) {
	c := newPair(t)
	notices := make(chan agentproto.ServiceExit, 8)
	c.OnNotice(func(n agentproto.Notice) {
		if n.ServiceExit != nil {
			notices <- *n.ServiceExit
		}
	})
	dir := t.TempDir()
	err := c.Services(context.Background(), []agentproto.Service{
		{Name: "x", Command: "echo bad option >&2; exit 1"},
		{Name: "segv", Command: "exec sh -c 'kill -SEGV $$'"},
		{Name: "flaky", Command: "test -e " + dir + "/second || { touch " + dir + "/second; exit 2; }; sleep 30", Restart: "on-failure"},
		{Name: "runs", Command: "sleep 30"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"x":     "service x exited with status 1",
		"segv":  "service segv was killed by signal 11 (segmentation fault)",
		"flaky": "service flaky exited with status 2; restarting",
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case e := <-notices:
			w, ok := want[e.Name]
			if !ok {
				t.Fatalf("unexpected notice %v", e)
			}
			if got := e.String(); got != w {
				t.Errorf("notice of %s: got %q, want %q", e.Name, got, w)
			}
			if e.Name == "x" && !slices.Equal(e.Tail, []string{"bad option"}) {
				t.Errorf("notice of x: got tail %q, want the service's last line", e.Tail)
			}
			delete(want, e.Name)
		case <-deadline:
			t.Fatalf("no notice after 10 s for %v", want)
		}
	}
}

// TestServiceExitNoticesThrottled: a service in a crash loop is told at
// its first three exits and then at the 4th, 8th, 16th..., each saying
// how many exits it has had: not one report line per restart.
func TestServiceExitNoticesThrottled(t *testing.T) {
	c := newPair(t)
	var mu sync.Mutex
	var got []string
	c.OnNotice(func(n agentproto.Notice) {
		mu.Lock()
		got = append(got, n.ServiceExit.String())
		mu.Unlock()
	})
	dir := t.TempDir()
	// Nine runs exit 1, the tenth stays up and is ready.
	loop := "n=$(cat " + dir + "/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + dir + "/n; " +
		"if [ $n -ge 10 ]; then touch " + dir + "/up; exec sleep 30; fi; exit 1"
	if err := c.Services(context.Background(), []agentproto.Service{
		{Name: "loop", Command: loop, Restart: "always", ReadyFile: dir + "/up"},
	}); err != nil {
		t.Fatal(err)
	}
	// The notices come before the wait's result, on the same channel.
	res, err := c.Wait(context.Background(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "loop", Timeout: 30 * time.Second})
	if err != nil || res.Error != "" || res.TimedOut {
		t.Fatalf("wait for loop: %v %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"service loop exited with status 1; restarting",
		"service loop exited with status 1 (exit 2 since boot); restarting",
		"service loop exited with status 1 (exit 3 since boot); restarting",
		"service loop exited with status 1 (exit 4 since boot); restarting",
		"service loop exited with status 1 (exit 8 since boot); restarting",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got notices\n%q\nwant\n%q", got, want)
	}
}
