package agent

import (
	"os"
	"os/signal"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// The agent is PID 1, so every orphan in the guest becomes its child and must
// be reaped. It must not reap the commands it started itself: their Wait
// needs the exit status. The kernel hands orphans to the init process's main
// thread (its first live thread), and a wait with __WNOTHREAD sees only the
// calling thread's children. So as PID 1 the main goroutine stays on the main
// thread (init below), starts nothing, and ends as the reaper: every child of
// that thread is an orphan. The agent's commands are started by other
// goroutines, so they are other threads' children; the fork server's clones
// (CLONE_PARENT) are children of the thread that started the server. Nothing
// is recorded and no lock is shared with the commands: a SIGCHLD costs one
// wait that finds nothing, instead of a scan of every thread's children.
//
// A child is the main thread's only when that thread forks it or when the
// thread that forked it exits; Go ends a thread only when a goroutine locked
// to it exits locked, which the agent's goroutines do not do.

func init() {
	if os.Getpid() == 1 {
		// Before main: the main goroutine never leaves the main thread, and
		// no other goroutine runs on it.
		runtime.LockOSThread()
	}
}

// exits is closed and replaced after every SIGCHLD the reaper handled: a
// wait for processes to end (powerOff) waits on it and looks again, rather
// than polling. The last process of the guest to end is a child of PID 1,
// so its end always comes with a SIGCHLD here.
var exits struct {
	mu sync.Mutex
	ch chan struct{}
}

// nextExit returns a channel closed at the next SIGCHLD the reaper handles.
func nextExit() <-chan struct{} {
	exits.mu.Lock()
	defer exits.mu.Unlock()
	if exits.ch == nil {
		exits.ch = make(chan struct{})
	}
	return exits.ch
}

func noteExit() {
	exits.mu.Lock()
	defer exits.mu.Unlock()
	if exits.ch != nil {
		close(exits.ch)
	}
	exits.ch = make(chan struct{})
}

// reapOrphans reaps, on every SIGCHLD, the orphans: it must run on the main
// thread (PID 1's main goroutine) and never returns.
func reapOrphans() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	for range sigs {
		reapThreadChildren()
		noteExit()
	}
}

// reapThreadChildren reaps every child of the calling thread that has ended,
// and none of another thread's; it returns how many it reaped. The caller
// stays on its thread (runtime.LockOSThread).
func reapThreadChildren() int {
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL|unix.WNOTHREAD, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return n
		}
		n++
	}
}
