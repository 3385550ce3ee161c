package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// fdTargets lists what pid's descriptors point at (pipe:[N], ...).
func fdTargets(t *testing.T, pid int) []string {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// pipeName is what /proc/PID/fd shows for f's pipe.
func pipeName(t *testing.T, f *os.File) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"
}

// TestForkServerClosesOutputFirst: when spawn returns, the server holds no
// copy of the command's stdout or stderr, so a short command's output ends
// when it does, however late the server runs again.
func TestForkServerClosesOutputFirst(t *testing.T) {
	f := testForkServer(t)
	in, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for i := range 50 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pid, err := f.spawn(t.Context(), in, w, w, f.dir, "true")
		if err != nil {
			t.Fatal(err)
		}
		name := pipeName(t, w)
		held := slices.Contains(fdTargets(t, f.pid), name)
		w.Close()
		res := waitProcess(t.Context(), pid, forkWait(pid), 0)
		r.Close()
		if held {
			t.Fatalf("request %d: the server still held the command's output when spawn returned", i)
		}
		if res.Exit != 0 {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
}

// TestForkServerStopped: a stopped server costs its own commands
// forkReplyTimeout: spawn gives up (errNotRun, the command ran nowhere), the
// server is killed, and it counts once towards broken.
func TestForkServerStopped(t *testing.T) {
	f := testForkServer(t)
	defer func(d time.Duration) { forkReplyTimeout = d }(forkReplyTimeout)
	forkReplyTimeout = 200 * time.Millisecond
	if err := syscall.Kill(f.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	mark := filepath.Join(t.TempDir(), "ran")
	forkServers.mu.Lock()
	forkServers.failures = 0
	forkServers.mu.Unlock()
	// Two requests in flight: the server counts once towards broken.
	const n = 2
	errc := make(chan error, n)
	for range n {
		go func() {
			_, err := f.spawn(context.Background(), in, os.Stdout, os.Stderr, f.dir, "touch "+mark)
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; !errors.Is(err, errNotRun) {
			t.Errorf("spawn on a stopped server: %v, want %v", err, errNotRun)
		}
	}
	<-f.exited
	if _, err := os.Stat(mark); err == nil {
		t.Error("the command ran")
	}
	forkServers.mu.Lock()
	failures := forkServers.failures
	forkServers.failures = 0
	forkServers.mu.Unlock()
	if failures != 1 {
		t.Errorf("one stopped server counted %d failures, want 1", failures)
	}
}

// TestForkServerCanceled: a request whose context ended before it started
// runs nothing, and fails as the exec path does.
func TestForkServerCanceled(t *testing.T) {
	useForkServer(t)
	mark := filepath.Join(t.TempDir(), "ran")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := startCommand(ctx, &agentproto.Exec{Command: "touch " + mark}, nil, os.Stdout, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "start the command: context canceled") {
		t.Errorf("got %v, want the exec path's start the command: context canceled", err)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("the canceled command ran")
	}
}

// TestForkServerChdir: a directory the new shell cannot change to is
// reported before anything runs (errNotRun naming the chdir), nothing on
// the command's stderr.
func TestForkServerChdir(t *testing.T) {
	f := testForkServer(t)
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	missing := filepath.Join(t.TempDir(), "gone")
	_, err = f.spawn(t.Context(), in, w, w, missing, "echo ran")
	w.Close()
	if !errors.Is(err, errNotRun) || !strings.Contains(err.Error(), "chdir "+missing+": no such file or directory") {
		t.Errorf("got %v, want %v naming the chdir", err, errNotRun)
	}
	var b [256]byte
	if n, _ := r.Read(b[:]); n > 0 {
		t.Errorf("the command's output: %q", b[:n])
	}
	// The server still serves.
	if out, _, _ := forkRun(t, f, "echo up", "", 0); out != "up\n" {
		t.Errorf("after: got %q", out)
	}
}

// TestForkServerBroken: a server that starts but dies on every request is
// not restarted for ever: after maxForkFailures, commands exec their shell.
func TestForkServerBroken(t *testing.T) {
	useForkServer(t)
	defer func(b string) { forkServerBootstrap = b }(forkServerBootstrap)
	// Ready, then gone at the first request.
	forkServerBootstrap = "printf R >&3; read -r -n1 x <&3"
	forkServers.mu.Lock()
	f := forkServers.cur
	forkServers.mu.Unlock()
	f.kill()
	for i := range maxForkFailures + 2 {
		ok, out := runCheck(t.Context(), &agentproto.Wait{Command: forkPathCheck})
		if !ok || out != "exec\n" {
			t.Fatalf("command %d: %v, %q", i, ok, out)
		}
	}
	forkServers.mu.Lock()
	broken, cur := forkServers.broken, forkServers.cur
	forkServers.mu.Unlock()
	if !broken {
		t.Error("the server is still restarted for every command")
	}
	if cur != nil {
		select {
		case <-cur.exited:
		default:
			t.Error("a server is running")
		}
	}
}

// TestReapThreadChildren: the reaper's wait takes the ended children of
// its own thread (as PID 1's main thread: the orphans) and leaves another
// thread's (the agent's commands) to their own Wait, exit status intact.
func TestReapThreadChildren(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	other := make(chan *os.Process, 1)
	go func() {
		// Another thread for certain: ours is locked to this test.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "exit 7"}, &os.ProcAttr{})
		if err != nil {
			t.Error(err)
		}
		other <- p
	}()
	p := <-other
	if p == nil {
		return
	}
	mine, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "exit 3"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	// Both have ended once a wait that does not reap says so.
	for _, pid := range []int{p.Pid, mine.Pid} {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := reapThreadChildren(); n < 1 {
		t.Errorf("reaped %d children, want this thread's", n)
	}
	if _, err := mine.Wait(); err == nil {
		t.Error("this thread's child was not reaped")
	}
	ps, err := p.Wait()
	if err != nil || ps.ExitCode() != 7 {
		t.Errorf("the other thread's child: %v, %v; want exit status 7", ps, err)
	}
}

// fakeForkServer is a fork server played by serve, in a goroutine, on the
// other end of the requests' socket: it gets each request's four
// descriptors. Its process, which the agent kills when it does not answer,
// is a sleep.
func fakeForkServer(t *testing.T, serve func(f *forkServer, fds []int)) *forkServer {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(pair[0]), "fake forksrv")
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &forkServer{conn: c.(*net.UnixConn), pid: cmd.Process.Pid, proc: cmd.Process, dir: "/", exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(f.exited)
	}()
	served := make(chan struct{})
	go func() {
		defer close(served)
		defer unix.Close(pair[1])
		buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4*4))
		_, oobn, _, _, err := unix.Recvmsg(pair[1], buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != nil {
			t.Error(err)
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Errorf("the request's descriptors: %v, %v", msgs, err)
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 4 {
			t.Errorf("the request's descriptors: %v, %v", fds, err)
			return
		}
		serve(f, fds)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	t.Cleanup(func() {
		f.conn.Close()
		f.kill()
		<-served
	})
	return f
}

// fakeAnswer writes what forksrv.c's answer does.
func fakeAnswer(t *testing.T, fd int, tag byte, nums ...int32) {
	t.Helper()
	b := []byte{tag}
	for _, n := range nums {
		b = binary.NativeEndian.AppendUint32(b, uint32(n))
	}
	if _, err := unix.Write(fd, b); err != nil {
		t.Error(err)
	}
}

// TestForkServerStuckAfterClone: a server that made its clone but stopped
// before answering is killed at forkReplyTimeout, and the clone's own answer,
// which comes later, still counts: the command started once, and does not
// also take the exec path.
func TestForkServerStuckAfterClone(t *testing.T) {
	defer func(d time.Duration) { forkReplyTimeout = d }(forkReplyTimeout)
	forkReplyTimeout = 100 * time.Millisecond
	clone := exec.Command("sh", "-c", "exit 5")
	if err := clone.Start(); err != nil {
		t.Fatal(err)
	}
	f := fakeForkServer(t, func(f *forkServer, fds []int) {
		<-f.exited // killed for not answering
		fakeAnswer(t, fds[3], answerChild, 0, int32(clone.Process.Pid))
	})
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	pid, err := f.spawn(t.Context(), in, os.Stdout, os.Stderr, "/", "true")
	if err != nil || pid != clone.Process.Pid {
		t.Fatalf("spawn: %d, %v; want the clone's pid %d", pid, err, clone.Process.Pid)
	}
	if res := waitProcess(t.Context(), pid, forkWait(pid), 0); res.Exit != 5 {
		t.Errorf("the clone's status: %+v", res)
	}
}

// TestForkServerCloneEnded: a clone the server answered for that ends
// before its own answer ran nothing: errNotRun, and it is reaped.
func TestForkServerCloneEnded(t *testing.T) {
	clone := exec.Command("true")
	if err := clone.Start(); err != nil {
		t.Fatal(err)
	}
	f := fakeForkServer(t, func(f *forkServer, fds []int) {
		fakeAnswer(t, fds[3], answerServer, int32(clone.Process.Pid))
	})
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	if _, err := f.spawn(t.Context(), in, os.Stdout, os.Stderr, "/", "true"); !errors.Is(err, errNotRun) {
		t.Errorf("spawn: %v, want %v", err, errNotRun)
	}
	if err := clone.Wait(); err == nil {
		t.Error("the clone was not reaped")
	}
}

// TestWarmForkServer: warmForkServer starts the server that the next
// command takes, so the first command does not wait for bash to load.
func TestWarmForkServer(t *testing.T) {
	useForkServer(t)
	if !canSetArgs(t) {
		defer func(b string) { forkServerBootstrap = b }(forkServerBootstrap)
		forkServerBootstrap = forkBootstrapKeepArgs
	}
	forkServers.mu.Lock()
	first := forkServers.cur
	forkServers.cur = nil
	forkServers.mu.Unlock()
	first.kill()
	warmForkServer()
	forkServers.mu.Lock()
	warm := forkServers.cur
	forkServers.mu.Unlock()
	if warm == nil {
		t.Fatal("no server after warmForkServer")
	}
	defer warm.kill()
	if ok, out := runCheck(t.Context(), &agentproto.Wait{Command: forkPathCheck}); !ok || out != "fork\n" {
		t.Errorf("the command after it: %v, %q", ok, out)
	}
	forkServers.mu.Lock()
	now := forkServers.cur
	forkServers.mu.Unlock()
	if now != warm {
		t.Error("the command started another server")
	}
}
