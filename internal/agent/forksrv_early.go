package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agent/forksrv"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// The early fork server (docs/snapshots.md "The fork server before the
// point"): the initramfs may hold a copy of the host's bash with its loader,
// libraries and C.UTF-8 locale (forksrv.ShellManifest). The agent then
// starts its fork server from that copy before the guest's root exists: on
// a snapshot boot before the point, so that a restored machine does not
// load bash again (0.3-0.45 s of its CPU under TCG). Once the root is up,
// the server is moved into it (adopt) if the root's bash is the file the
// copy was made of; otherwise it is ended and the root's bash serves, as
// without a copy.

// shellCopy is what the initramfs says of its copy of the host's shell.
type shellCopy struct {
	path  string // the host's path, the same in the guest's root
	size  int64
	mtime int64 // nanoseconds since the epoch
}

// readShellManifest reads forksrv.ShellManifest from the initramfs; an
// initramfs without it has no copy.
func readShellManifest(path string) (shellCopy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return shellCopy{}, err
	}
	var c shellCopy
	if _, err := fmt.Sscanf(string(b), "%s %d %d\n", &c.path, &c.size, &c.mtime); err != nil {
		return shellCopy{}, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// sameFile reports why the root's file at c.path is not the one the copy was
// made of, or "" when it is (by size and modification time).
func (c shellCopy) sameFile() string {
	fi, err := os.Stat(c.path)
	switch {
	case err != nil:
		return err.Error()
	case fi.Size() != c.size || fi.ModTime().UnixNano() != c.mtime:
		return fmt.Sprintf("the root's %s is not the host's file the initramfs copied", c.path)
	}
	return ""
}

// startEarlyForkServer starts, when want says so, the fork server from the
// initramfs's copy of the host's shell, and sends it on the channel it
// returns; it sends nil when there is none or it does not start (the root's
// shell then serves, as without a copy). Call it before the switch to the
// guest's root, after loadForkLib. The server starts on a goroutine of its
// own: never from PID 1's main thread, whose children are the reaper's
// (reaper.go), and the server's clones are children of the thread that
// started it. (Started from the main goroutine, the reaper took commands'
// exits first: "waitid: no child processes", 9 of 100 concurrent commands.)
func startEarlyForkServer(want bool) <-chan *forkServer {
	c := make(chan *forkServer, 1)
	go func() {
		var f *forkServer
		if want {
			f = earlyForkServer()
		}
		c <- f
	}()
	return c
}

// earlyForkServer is startEarlyForkServer's work, on its goroutine.
func earlyForkServer() *forkServer {
	if forkLib == nil {
		return nil
	}
	c, err := readShellManifest(forksrv.ShellManifest)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logf("no early fork server: %v", err)
		}
		return nil
	}
	if c.path != bashPath {
		return nil
	}
	f, err := startForkServer(forkLib, strictShell(), forkServerBootstrap)
	if err != nil {
		logf("no early fork server: %v", err)
		return nil
	}
	f.shell = &c
	return f
}

// adoptForkServer makes early, if any, the agent's fork server once the
// guest's root is up: the root must be the host's (no image) and its shell
// the file early's is a copy of. Otherwise early is ended. It takes
// forkServers.mu, which the caller may hold for it (locked true): commands
// that come meanwhile wait for the server rather than start another.
func adoptForkServer(early *forkServer, cfg agentproto.BootConfig, locked bool) {
	if !locked {
		forkServers.mu.Lock()
	}
	defer forkServers.mu.Unlock()
	if early == nil {
		return
	}
	why := ""
	switch {
	case cfg.Init == initSystemd:
		why = "systemd serves this machine"
	case cfg.Image != nil:
		why = "the root is the image " + cfg.Image.Name
	case forkLib == nil || forkServers.broken || forkServers.cur != nil:
		why = "another server serves"
	default:
		why = early.shell.sameFile()
	}
	if why == "" {
		if err := early.moveToRoot("/", workDir("/root"), withCoverage(baseEnv("root", "/root", bashPath, "dumb"), nil)); err != nil {
			// Unlike the reasons above, a failure: say which.
			logf("the fork server starts from the root's bash: %v", err)
			why = err.Error()
		}
	}
	if why != "" {
		// The root's shell serves, as it would have without a copy.
		early.kill()
		return
	}
	forkServers.cur = early
}

// moveToRoot sends the server the 'S' message (forksrv.c): its root becomes
// the agent's directory root, its working directory dir in that root, and
// env its exported variables.
func (f *forkServer) moveToRoot(root, dir string, env []string) error {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the root for the fork server: %w", err)
	}
	defer unix.Close(fd)
	msg := "S" + dir + "\x00"
	for _, kv := range env {
		msg += kv + "\x00"
	}
	if strings.Count(msg, "\x00") != len(env)+1 {
		return errors.New("move the fork server: a NUL in its directory or environment")
	}
	if _, _, err := f.conn.WriteMsgUnix([]byte(msg), unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("move the fork server: %w", err)
	}
	// Cold code under TCG: as long as the server's start may take.
	f.conn.SetReadDeadline(time.Now().Add(time.Minute))
	defer f.conn.SetReadDeadline(time.Time{})
	var b [5]byte
	n, err := f.conn.Read(b[:])
	switch {
	case err != nil:
		return fmt.Errorf("move the fork server: read its answer: %w", err)
	case n != 5 || b[0] != 'S':
		return fmt.Errorf("move the fork server: an answer %q", b[:n])
	}
	if errno := unix.Errno(int32(binary.NativeEndian.Uint32(b[1:]))); errno != 0 {
		return fmt.Errorf("move the fork server to %s: %w", dir, errno)
	}
	f.dir = dir
	return nil
}
