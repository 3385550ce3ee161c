package agent

import (
	"context"
	"errors"
	"os"
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
		pid, done, err := f.spawn(t.Context(), in, w, w, f.dir, "true")
		if err != nil {
			t.Fatal(err)
		}
		name := pipeName(t, w)
		held := slices.Contains(fdTargets(t, f.pid), name)
		w.Close()
		res := waitProcess(t.Context(), pid, forkWait(pid), 0)
		done()
		r.Close()
		if held {
			t.Fatalf("request %d: the server still held the command's output when spawn returned", i)
		}
		if res.Exit != 0 {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
}

// TestForkServerStopped: a stopped server costs its own command
// forkReplyTimeout, not the reaper's lock: spawn gives up (errNotRun, the
// command ran nowhere) while the reaper holds the lock, and the server is
// killed.
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
	children.spawn.Lock() // as the reaper does
	locked := true
	defer func() {
		if locked {
			children.spawn.Unlock()
		}
	}()
	forkServers.mu.Lock()
	forkServers.failures = 0
	forkServers.mu.Unlock()
	// Two requests in flight: the server counts once towards broken.
	const n = 2
	errc := make(chan error, n)
	for range n {
		go func() {
			_, _, err := f.spawn(context.Background(), in, os.Stdout, os.Stderr, f.dir, "touch "+mark)
			errc <- err
		}()
	}
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for range n {
		select {
		case err := <-errc:
			if !errors.Is(err, errNotRun) {
				t.Errorf("spawn on a stopped server: %v, want %v", err, errNotRun)
			}
		case <-deadline.C:
			children.spawn.Unlock()
			locked = false
			<-errc
			t.Fatal("spawn on a stopped server waited for the reaper's lock")
		}
	}
	children.spawn.Unlock()
	locked = false
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
	_, _, _, err := startCommand(ctx, &agentproto.Exec{Command: "touch " + mark}, nil, os.Stdout, os.Stderr)
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
	_, _, err = f.spawn(t.Context(), in, w, w, missing, "echo ran")
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

// TestChildPidsEveryThread: the reaper sees the children of every thread
// of the agent (the fork server's clones are children of the thread that
// started the server), not only the main thread's.
func TestChildPidsEveryThread(t *testing.T) {
	pidc := make(chan int, 1)
	release := make(chan struct{})
	var start func()
	start = func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if unix.Gettid() == os.Getpid() {
			// Keep the main thread busy; fork from another.
			go start()
			<-release
			return
		}
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			t.Error(err)
			pidc <- 0
			return
		}
		pidc <- p.Pid
		<-release
		p.Wait()
	}
	go start()
	pid := <-pidc
	defer close(release)
	if pid == 0 {
		return
	}
	if !slices.Contains(childPids(), pid) {
		t.Errorf("child %d of another thread is not in %v", pid, childPids())
	}
}
