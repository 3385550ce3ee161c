package agentclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/x11"
	"github.com/vmlab/vmlab/internal/x11/x11test"
)

// xClient connects the test to display as a client of its own, to make
// windows.
func xClient(t *testing.T, display string, auth x11.Auth) *x11.Conn {
	t.Helper()
	c, err := x11.Dial(t.Context(), display, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// makeWindow makes a window named name (none when empty) under parent,
// and returns once the server has it.
func makeWindow(t *testing.T, x *x11.Conn, parent x11.Window, name string) x11.Window {
	t.Helper()
	w := x.CreateWindow(parent, 0, 0, 10, 10)
	if name != "" {
		x.ChangeProperty(w, x11.AtomWMName, x11.AtomString, []byte(name))
	}
	x.MapWindow(w)
	if err := x.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

type waited struct {
	res agentproto.Result
	err error
	at  time.Time
}

// startWait starts w in the background; the round trip after it makes
// sure the agent has read the wait request (frames are handled in order).
func startWait(t *testing.T, c *agentclient.Client, w agentproto.Wait) chan waited {
	done := make(chan waited, 1)
	go func() {
		res, err := c.Wait(context.Background(), w)
		done <- waited{res, err, time.Now()}
	}()
	run(t, c, "true")
	return done
}

func TestWaitX(t *testing.T) {
	c := newPair(t)

	t.Run("a server that is up", func(t *testing.T) {
		display := x11test.Xvfb(t)
		res, err := c.Wait(t.Context(), agentproto.Wait{Kind: agentproto.WaitX, Display: display, Timeout: 10 * time.Second})
		if err != nil || res.Error != "" || res.TimedOut || !strings.Contains(res.Output, "X.Org") {
			t.Errorf("got %+v, %v; want the server's name", res, err)
		}
	})

	t.Run("a server started during the wait", func(t *testing.T) {
		display := x11test.FreeDisplay(t)
		done := startWait(t, c, agentproto.Wait{Kind: agentproto.WaitX, Display: display, Timeout: 30 * time.Second})
		x11test.XvfbOn(t, display)
		ready := time.Now()
		r := <-done
		if r.err != nil || r.res.Error != "" || r.res.TimedOut || !strings.Contains(r.res.Output, "X.Org") {
			t.Fatalf("got %+v, %v; want the server's name", r.res, r.err)
		}
		// Xvfb says it is ready after its socket is there: the wait may
		// return before, never long after.
		t.Logf("the wait returned %v after Xvfb said it was ready, after %d tries", r.at.Sub(ready), r.res.Tries)
		if late := r.at.Sub(ready); late > time.Second {
			t.Errorf("the wait returned %v after the server was ready, want milliseconds", late)
		}
	})

	t.Run("a server with a cookie", func(t *testing.T) {
		display := x11test.Xvfb(t, "-auth", x11test.AuthFile(t, -1))
		res, err := c.Wait(t.Context(), agentproto.Wait{Kind: agentproto.WaitX, Display: display, Timeout: 10 * time.Second})
		if err != nil || res.Error != "" || res.TimedOut {
			t.Errorf("got %+v, %v; want the agent to send the cookie of the server's -auth file", res, err)
		}
	})

	t.Run("no server", func(t *testing.T) {
		display := x11test.FreeDisplay(t)
		res, err := c.Wait(t.Context(), agentproto.Wait{Kind: agentproto.WaitX, Display: display, Timeout: 200 * time.Millisecond})
		if err != nil || !res.TimedOut || !strings.Contains(res.Output, "no X server on "+display) {
			t.Errorf("got %+v, %v; want a timeout saying there is no server", res, err)
		}
	})

	t.Run("a bad display", func(t *testing.T) {
		res, err := c.Wait(t.Context(), agentproto.Wait{Kind: agentproto.WaitX, Display: "remote:0", Timeout: time.Second})
		if err != nil || !strings.Contains(res.Error, "only local displays") {
			t.Errorf("got %+v, %v; want an error about the display", res, err)
		}
	})
}

func TestWaitWindow(t *testing.T) {
	c := newPair(t)
	display := x11test.Xvfb(t)
	x := xClient(t, display, x11.Auth{})
	root := x.Setup().Screens[0].Root
	wait := func(regex string, timeout time.Duration) agentproto.Wait {
		return agentproto.Wait{Kind: agentproto.WaitWindow, Display: display, Regex: regex, Timeout: timeout}
	}

	t.Run("a window made during the wait", func(t *testing.T) {
		done := startWait(t, c, wait(`^late \d+$`, 10*time.Second))
		makeWindow(t, x, root, "late 1")
		made := time.Now()
		r := <-done
		if r.err != nil || r.res.Error != "" || !strings.Contains(r.res.Output, "late 1\n") {
			t.Fatalf("got %+v, %v; want the names with the window's", r.res, r.err)
		}
		t.Logf("the wait returned %v after the window was made", r.at.Sub(made))
	})

	// The agent reads the names again only on an event: these pass only
	// if it asked for the events of the window, and of its parent.
	t.Run("a window renamed", func(t *testing.T) {
		w := makeWindow(t, x, root, "before")
		done := startWait(t, c, wait(`^after$`, 10*time.Second))
		x.ChangeProperty(w, x11.AtomWMName, x11.AtomString, []byte("after"))
		if err := x.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		renamed := time.Now()
		r := <-done
		if r.err != nil || r.res.Error != "" || r.res.TimedOut || !strings.Contains(r.res.Output, "after\n") {
			t.Fatalf("got %+v, %v; want the renamed window found", r.res, r.err)
		}
		t.Logf("the wait returned %v after the rename", r.at.Sub(renamed))
	})

	t.Run("a window inside another", func(t *testing.T) {
		parent := makeWindow(t, x, root, "")
		done := startWait(t, c, wait(`^inner$`, 10*time.Second))
		makeWindow(t, x, parent, "inner")
		if r := <-done; r.err != nil || r.res.Error != "" || r.res.TimedOut {
			t.Fatalf("got %+v, %v; want the inner window found", r.res, r.err)
		}
	})

	t.Run("a regex that never matches", func(t *testing.T) {
		res, err := c.Wait(t.Context(), wait(`^never$`, 200*time.Millisecond))
		if err != nil || !res.TimedOut || !strings.Contains(res.Output, "before\n") && !strings.Contains(res.Output, "after\n") {
			t.Errorf("got %+v, %v; want a timeout with the names last read", res, err)
		}
	})

	t.Run("a bad regex", func(t *testing.T) {
		res, err := c.Wait(t.Context(), wait(`(`, time.Second))
		if err != nil || !strings.Contains(res.Error, "missing closing )") {
			t.Errorf("got %+v, %v; want the regex's error", res, err)
		}
	})

	t.Run("the server starts during the wait", func(t *testing.T) {
		later := x11test.FreeDisplay(t)
		done := startWait(t, c, agentproto.Wait{Kind: agentproto.WaitWindow, Display: later, Regex: "^first$", Timeout: 30 * time.Second})
		x2 := xClient(t, x11test.XvfbOn(t, later), x11.Auth{})
		makeWindow(t, x2, x2.Setup().Screens[0].Root, "first")
		if r := <-done; r.err != nil || r.res.Error != "" || r.res.TimedOut {
			t.Fatalf("got %+v, %v; want the window found", r.res, r.err)
		}
	})
}

func TestXWindows(t *testing.T) {
	c := newPair(t)
	display := x11test.Xvfb(t, "-auth", x11test.AuthFile(t, -1))
	x := xClient(t, display, x11.Auth{Name: x11.CookieName, Data: x11test.Cookie})
	root := x.Setup().Screens[0].Root
	a := makeWindow(t, x, root, "one")
	makeWindow(t, x, a, "one's child")
	makeWindow(t, x, root, "")
	makeWindow(t, x, root, "two")
	res, err := c.XWindows(t.Context(), display)
	if want := "one\none's child\ntwo\n"; err != nil || res.Error != "" || res.Output != want {
		t.Errorf("got %+v, %v; want %q (tree order, unnamed left out)", res, err, want)
	}

	res, err = c.XWindows(t.Context(), x11test.FreeDisplay(t))
	if err != nil || !strings.HasPrefix(res.Error, "x11: connect :") {
		t.Errorf("without a server: got %+v, %v; want the connect error", res, err)
	}
}

// TestXWindowsWhileResetting: a server without clients resets each time
// the agent's connection closes, and closes connections made meanwhile;
// the agent connects again, so every call answers.
func TestXWindowsWhileResetting(t *testing.T) {
	c := newPair(t)
	display := x11test.Xvfb(t)
	for i := range 30 {
		if res, err := c.XWindows(t.Context(), display); err != nil || res.Error != "" {
			t.Fatalf("call %d: got %+v, %v; want an answer", i, res, err)
		}
	}
}
