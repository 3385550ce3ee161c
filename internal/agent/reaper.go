package agent

import (
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The agent is PID 1, so every orphan in the guest becomes its child and must
// be reaped. It must not reap the commands it started itself: their Wait
// needs the exit status. Reaping therefore waits only for children it did not
// start, one pid at a time, and starting a command and recording its pid
// happen under a lock the reaper also takes, so the reaper never sees a
// child of ours before it is recorded.
var children struct {
	spawn sync.RWMutex // read: starting commands; write: reaping

	mu      sync.Mutex
	tracked map[int]bool
}

// start starts cmd and records its pid as ours until done is called.
func start(cmd *exec.Cmd) (done func(), err error) {
	children.spawn.RLock()
	defer children.spawn.RUnlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return track(cmd.Process.Pid), nil
}

// track records pid as a child of ours until done is called. The caller
// holds children.spawn for reading from before the child exists (the fork
// server's children, forksrv.go, are the agent's but not started by it).
func track(pid int) (done func()) {
	children.mu.Lock()
	if children.tracked == nil {
		children.tracked = make(map[int]bool)
	}
	children.tracked[pid] = true
	children.mu.Unlock()
	return func() {
		children.mu.Lock()
		delete(children.tracked, pid)
		children.mu.Unlock()
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

// reapOrphans reaps, on every SIGCHLD, the children the agent did not start.
// It runs for the agent's lifetime.
func reapOrphans() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	for range sigs {
		children.spawn.Lock()
		for _, pid := range childPids() {
			children.mu.Lock()
			ours := children.tracked[pid]
			children.mu.Unlock()
			if !ours {
				var ws unix.WaitStatus
				unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			}
		}
		children.spawn.Unlock()
		noteExit()
	}
}

// childPids lists the children of every thread of the agent: orphans are
// reparented to the main thread, and the fork server's clones (CLONE_PARENT)
// are children of whichever thread started the server, so an abandoned one
// may be anywhere. A wait from any thread reaps a sibling thread's child.
// The agent's own commands are listed too; they are tracked and reaped by
// their Wait.
func childPids() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err != nil {
			continue
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
