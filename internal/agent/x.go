package agent

// X displays (wait_for_x, wait_for_window, get_window_names): the agent is
// an X client of the guest's server itself (internal/x11), so a wait needs
// neither xwininfo nor a shell in the guest, and follows the server's own
// events instead of polling:
//
//   - WaitX connects when the display's socket appears: inotify on
//     /tmp/.X11-unix (on /tmp until that exists) wakes it for each file
//     created there, and it connects again.
//   - WaitWindow, once connected, asks the server for the events that
//     change the list of names (windows created, destroyed, mapped,
//     reparented; properties changed) on the root and on every window,
//     and reads the names again after each.
//
// The server's cookie is read from its own "-auth FILE" (x11.FindAuth).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/x11"
)

// x11Dir is where X servers make their sockets.
const x11Dir = "/tmp/.X11-unix"

// Retries after a refused connection, or a setup the server refused: the
// socket file exists, but the server has not called listen(2) yet (Xtrans
// binds, which makes the file and its inotify event, then listens: no
// event marks the end of that window), or its cookie file is not written
// yet. They back off from 5 ms, doubling, to at most 200 ms between
// tries: the window is milliseconds, and a stale socket of a server that
// died costs at most five connects a second.
const (
	firstRetry = 5 * time.Millisecond
	maxRetry   = 200 * time.Millisecond
)

func displayOr0(d string) string {
	if d == "" {
		return ":0"
	}
	return d
}

// cookies are the cookies that let the agent in, by display: finding a
// server's cookie reads the fd links of every process (x11.FindAuth),
// which cost more than the rest of a get_window_names under TCG.
var cookies struct {
	sync.Mutex
	m map[string]x11.Auth
}

// dialX connects to display with the server's cookie, and tries again
// while the server resets (x11.ConnectError.Resetting: an X server
// resets when its last client leaves, and a probe such as WaitX's may
// have been that client), with the backoff of firstRetry, for at most
// resetWait.
func dialX(ctx context.Context, display string, n int) (*x11.Conn, error) {
	retry := firstRetry
	deadline := time.Now().Add(resetWait)
	for {
		c, err := dialCookie(ctx, display, n)
		ce := (*x11.ConnectError)(nil)
		if err == nil || !errors.As(err, &ce) || !ce.Resetting() || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-time.After(retry):
			retry = min(2*retry, maxRetry)
		case <-ctx.Done():
			return nil, err
		}
	}
}

// resetWait bounds dialX's tries while a server resets: 25-80 ms on the
// host, 2 s leaves room for TCG.
const resetWait = 2 * time.Second

// dialCookie connects to display with the server's cookie: the one that
// worked last time, else the one found now.
func dialCookie(ctx context.Context, display string, n int) (*x11.Conn, error) {
	cookies.Lock()
	auth, ok := cookies.m[display]
	cookies.Unlock()
	if ok {
		c, err := x11.Dial(ctx, display, auth)
		if se := (*x11.SetupError)(nil); !errors.As(err, &se) {
			return c, err
		}
		// Refused: a new server, with a new cookie.
	}
	auth = x11.FindAuth(n)
	c, err := x11.Dial(ctx, display, auth)
	if err == nil {
		cookies.Lock()
		if cookies.m == nil {
			cookies.m = map[string]x11.Auth{}
		}
		cookies.m[display] = auth
		cookies.Unlock()
	}
	return c, err
}

// awaitX returns a connection to display once its server accepts one.
// Each try counts in res.Tries, and res.Output says why the last failed;
// the error is the context's when it ended first.
func awaitX(ctx context.Context, display string, res *agentproto.Result) (*x11.Conn, error) {
	n, err := x11.DisplayNumber(display)
	if err != nil {
		return nil, err
	}
	events, err := watchSockets()
	if err != nil {
		return nil, err
	}
	defer events.Close()
	retry := firstRetry
	for {
		res.Tries++
		c, err := dialX(ctx, display, n)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res.Output = fmt.Sprintf("no X server on %s: %v\n", display, err)
		var timer <-chan time.Time
		if !errors.Is(err, unix.ENOENT) {
			// A socket that refused, or a setup the server refused: see
			// firstRetry. No socket yet: its creation is an event.
			timer = time.After(retry)
			retry = min(2*retry, maxRetry)
		}
		select {
		case <-events.C:
			retry = firstRetry
		case <-timer:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// waitX answers a WaitX: Output names the server.
func waitX(ctx context.Context, w agentproto.Wait) agentproto.Result {
	ctx, cancel := withTimeout(ctx, w.Timeout)
	defer cancel()
	display := displayOr0(w.Display)
	var res agentproto.Result
	c, err := awaitX(ctx, display, &res)
	if ctx.Err() != nil {
		return ended(ctx, res)
	}
	if err != nil {
		res.Error = fmt.Sprintf("wait for X on %s: %v", display, err)
		return res
	}
	defer c.Close()
	s := c.Setup()
	res.Output = fmt.Sprintf("%s %d\n", s.Vendor, s.Release)
	return res
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// xWindows answers OpXWindows.
func xWindows(ctx context.Context, display string) agentproto.Result {
	display = displayOr0(display)
	n, err := x11.DisplayNumber(display)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	c, err := dialX(ctx, display, n)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	defer c.Close()
	ws, err := c.Windows(ctx)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	names, err := c.Names(ctx, ws)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	return agentproto.Result{Output: lines(names)}
}

// lines is names one a line, each ending in a newline.
func lines(names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// waitWindow answers a WaitWindow. It waits for the server first, and
// for the next one when the server exits while it waits.
func waitWindow(ctx context.Context, w agentproto.Wait) agentproto.Result {
	display := displayOr0(w.Display)
	re, err := regexp.Compile(w.Regex)
	if err != nil {
		return agentproto.Result{Error: fmt.Sprintf("wait for a window on %s: %v", display, err)}
	}
	ctx, cancel := withTimeout(ctx, w.Timeout)
	defer cancel()
	var res agentproto.Result
	for {
		c, err := awaitX(ctx, display, &res)
		if ctx.Err() != nil {
			return ended(ctx, res)
		}
		if err != nil {
			res.Error = fmt.Sprintf("wait for a window on %s: %v", display, err)
			return res
		}
		found, err := watchNames(ctx, c, re, &res)
		c.Close()
		switch {
		case found:
			return res
		case ctx.Err() != nil:
			return ended(ctx, res)
		}
		// The connection ended (err): the server exited. Wait for the
		// next one.
		res.Output = fmt.Sprintf("the X server on %s went away: %v\n", display, err)
	}
}

// nameEvents are the events after which the names are read again.
var nameEvents = map[uint8]bool{x11.CreateNotify: true, x11.DestroyNotify: true, x11.MapNotify: true,
	x11.UnmapNotify: true, x11.ReparentNotify: true, x11.PropertyNotify: true}

// watchNames reads the window names, and again after each event that may
// change them, until one matches re. res.Output is the names last read.
func watchNames(ctx context.Context, c *x11.Conn, re *regexp.Regexp, res *agentproto.Result) (bool, error) {
	selected := map[x11.Window]bool{}
	for {
		ws, err := selectAll(ctx, c, selected)
		if err != nil {
			return false, err
		}
		names, err := c.Names(ctx, ws)
		if err != nil {
			return false, err
		}
		res.Tries++
		res.Output = lines(names)
		for _, n := range names {
			if re.MatchString(n) {
				return true, nil
			}
		}
		// Events already read were caused before the names were read:
		// read the names again once per batch, not once per event.
		for changed := false; !changed || c.Pending() > 0; {
			e, err := c.NextEvent(ctx)
			if err != nil {
				return false, err
			}
			changed = changed || nameEvents[e.Code()]
		}
	}
}

// selectAll asks for the events of every window that has none selected
// yet, and returns the windows. The tree is read again after a selection:
// a window's child created before its selection reached the server made
// no event, and the new read finds it. selected is the windows selected,
// updated.
func selectAll(ctx context.Context, c *x11.Conn, selected map[x11.Window]bool) ([]x11.Window, error) {
	for {
		ws, err := c.Windows(ctx)
		if err != nil {
			return nil, err
		}
		fresh := false
		now := make(map[x11.Window]bool, len(ws))
		for _, w := range ws {
			now[w] = true
			if !selected[w] {
				// A window destroyed meanwhile answers BadWindow, which
				// the connection keeps for a Sync nobody does.
				c.SelectInput(w, x11.SubstructureNotifyMask|x11.PropertyChangeMask)
				fresh = true
			}
		}
		// Forget destroyed windows: the server may reuse their ids.
		clear(selected)
		for w := range now {
			selected[w] = true
		}
		if !fresh {
			return ws, nil
		}
	}
}

// socketEvents wakes a waiter whenever a file is created in x11Dir (or
// x11Dir itself in /tmp), through inotify.
type socketEvents struct {
	C    chan struct{} // one token for one or more events
	f    *os.File
	done sync.WaitGroup
}

// watchSockets starts watching x11Dir, or /tmp for it to appear.
func watchSockets() (*socketEvents, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", x11Dir, err)
	}
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ATTRIB
	watchDir := func() bool { _, err := unix.InotifyAddWatch(fd, x11Dir, mask); return err == nil }
	if !watchDir() {
		if _, err := unix.InotifyAddWatch(fd, filepath.Dir(x11Dir), unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("watch %s: %w", filepath.Dir(x11Dir), err)
		}
		// Made between the two calls: watched now, or watchDir below.
		watchDir()
	}
	// A nonblocking fd in an *os.File is read through Go's poller, so
	// Close ends a read.
	s := &socketEvents{C: make(chan struct{}, 1), f: os.NewFile(uintptr(fd), "inotify")}
	s.done.Go(func() {
		buf := make([]byte, 4096)
		for {
			if _, err := s.f.Read(buf); err != nil {
				return
			}
			// An event in /tmp may be x11Dir's creation: watch it (a no-op
			// when watched already). Control keeps the fd open meanwhile.
			if rc, err := s.f.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { unix.InotifyAddWatch(int(fd), x11Dir, mask) })
			}
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	})
	return s, nil
}

// Close stops the watch and waits for its reader.
func (s *socketEvents) Close() {
	s.f.Close()
	s.done.Wait()
}
