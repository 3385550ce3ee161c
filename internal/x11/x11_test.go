package x11_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/x11"
	"github.com/vmlab/vmlab/internal/x11/x11test"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), x11test.Deadline)
	t.Cleanup(cancel)
	return c
}

func dial(t *testing.T, display string, auth x11.Auth) *x11.Conn {
	t.Helper()
	c, err := x11.Dial(ctx(t), display, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// named makes a top-level window with the given names (none when empty)
// and returns it once the server has it.
func named(t *testing.T, c *x11.Conn, parent x11.Window, wmName []byte, wmType x11.Atom, netName string) x11.Window {
	t.Helper()
	w := c.CreateWindow(parent, 0, 0, 10, 10)
	if wmName != nil {
		c.ChangeProperty(w, x11.AtomWMName, wmType, wmName)
	}
	if netName != "" {
		p, _ := c.InternAtom(ctx(t), "_NET_WM_NAME", false)
		u, _ := c.InternAtom(ctx(t), "UTF8_STRING", false)
		c.ChangeProperty(w, p, u, []byte(netName))
	}
	c.MapWindow(w)
	if err := c.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestDialAndSetup(t *testing.T) {
	display := x11test.Xvfb(t)
	c := dial(t, display, x11.Auth{})
	s := c.Setup()
	if !strings.Contains(s.Vendor, "X.Org") || len(s.Screens) != 1 || s.Screens[0].Width != 640 || s.Screens[0].Height != 480 || s.Screens[0].Root == 0 {
		t.Errorf("got setup %+v, want X.Org's, one 640x480 screen with a root", s)
	}
}

func TestDialRefused(t *testing.T) {
	// No server listens on display 9999's socket.
	_, err := x11.Dial(ctx(t), ":9999", x11.Auth{})
	ce := (*x11.ConnectError)(nil)
	if !errors.As(err, &ce) || !ce.Refused() || !strings.HasPrefix(err.Error(), "x11: connect :9999: ") {
		t.Errorf("got %v, want a refused *ConnectError starting with \"x11: connect :9999: \"", err)
	}
	for _, bad := range []string{"host:0", ":x", ""} {
		if _, err := x11.Dial(ctx(t), bad, x11.Auth{}); err == nil || !strings.Contains(err.Error(), "display") {
			t.Errorf("Dial(%q): got %v, want an error about the display name", bad, err)
		}
	}
}

func TestAuthorization(t *testing.T) {
	file := x11test.AuthFile(t, -1)
	display := x11test.Xvfb(t, "-auth", file)
	n, _ := x11.DisplayNumber(display)

	_, err := x11.Dial(ctx(t), display, x11.Auth{})
	se := (*x11.SetupError)(nil)
	if !errors.As(err, &se) || se.Reason == "" {
		t.Fatalf("without a cookie: got %v, want a *SetupError with the server's reason", err)
	}
	if got := x11.ServerAuthFile("/proc", n); got != file {
		t.Errorf("ServerAuthFile: got %q, want the server's -auth %q", got, file)
	}
	auth, err := x11.ReadCookie(file, n)
	if err != nil || auth.Name != x11.CookieName || string(auth.Data) != string(x11test.Cookie) {
		t.Fatalf("ReadCookie: got %+v, %v; want the test's cookie", auth, err)
	}
	dial(t, display, auth)
	if a := x11.FindAuth(n); string(a.Data) != string(x11test.Cookie) {
		t.Errorf("FindAuth: got %+v, want the cookie of the server's -auth file", a)
	}
	if _, err := x11.ReadCookie(x11test.AuthFile(t, n+1), n); err == nil {
		t.Errorf("ReadCookie of a file for another display: got no error")
	}
}

func TestWindowsAndNames(t *testing.T) {
	display := x11test.Xvfb(t)
	c := dial(t, display, x11.Auth{})
	root := c.Setup().Screens[0].Root
	ct, _ := c.InternAtom(ctx(t), "COMPOUND_TEXT", false)
	a := named(t, c, root, []byte("caf\xe9 latin1"), x11.AtomString, "")
	child := named(t, c, a, []byte("child\nof a"), x11.AtomString, "")
	unnamed := named(t, c, root, nil, 0, "")
	b := named(t, c, root, []byte("fallback"), x11.AtomString, "utf8 ✓")
	d := named(t, c, root, []byte("\x1b-Acompound"), ct, "")

	other := dial(t, display, x11.Auth{})
	ws, err := other.Windows(ctx(t))
	if want := []x11.Window{root, a, child, unnamed, b, d}; err != nil || !slices.Equal(ws, want) {
		t.Fatalf("Windows: got %x, %v; want %x (tree order)", ws, err, want)
	}
	names, err := other.Names(ctx(t), ws)
	if want := []string{"café latin1", "child of a", "utf8 ✓", "compound"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("Names: got %q, %v; want %q", names, err, want)
	}

	c.DestroyWindow(b)
	if err := c.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if names, err := other.Names(ctx(t), ws); err != nil || slices.Contains(names, "utf8 ✓") || len(names) != 3 {
		t.Errorf("Names with a window destroyed: got %q, %v; want the 3 others", names, err)
	}
}

func TestEvents(t *testing.T) {
	display := x11test.Xvfb(t)
	watcher := dial(t, display, x11.Auth{})
	maker := dial(t, display, x11.Auth{})
	root := watcher.Setup().Screens[0].Root
	watcher.SelectInput(root, x11.SubstructureNotifyMask)
	if err := watcher.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	w := named(t, maker, root, nil, 0, "")
	next := func(want uint8) {
		t.Helper()
		for {
			e, err := watcher.NextEvent(ctx(t))
			if err != nil {
				t.Fatalf("waiting for event %d: %v", want, err)
			}
			if e.Code() == want {
				return
			}
		}
	}
	next(x11.CreateNotify)
	next(x11.MapNotify)
	watcher.SelectInput(w, x11.PropertyChangeMask)
	if err := watcher.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	maker.ChangeProperty(w, x11.AtomWMName, x11.AtomString, []byte("renamed"))
	if err := maker.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	next(x11.PropertyNotify)

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := watcher.NextEvent(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("NextEvent with nothing to come: got %v, want the context's deadline", err)
	}
}

func TestSyncReportsErrors(t *testing.T) {
	c := dial(t, x11test.Xvfb(t), x11.Auth{})
	c.SelectInput(0x3fffff, x11.PropertyChangeMask) // no such window
	err := c.Sync(ctx(t))
	xe := (*x11.Error)(nil)
	if !errors.As(err, &xe) || xe.Code != 3 || !strings.Contains(err.Error(), "BadWindow") {
		t.Errorf("got %v, want BadWindow", err)
	}
	if err := c.Sync(ctx(t)); err != nil {
		t.Errorf("a second Sync: got %v, want none (the error was reported)", err)
	}
}

func TestDisplayNumber(t *testing.T) {
	for in, want := range map[string]int{":0": 0, ":12.0": 12, ":3.1": 3} {
		if got, err := x11.DisplayNumber(in); err != nil || got != want {
			t.Errorf("DisplayNumber(%q): got %d, %v; want %d", in, got, err, want)
		}
	}
}

// TestConnectErrorResetting: a connection a resetting server closes
// reads as resetting however the close shows: an end of file, a reset, or
// a broken pipe when the setup could not even be written (under load, a
// wait failed on it instead of trying again).
func TestConnectErrorResetting(t *testing.T) {
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.EPIPE} {
		if !(&x11.ConnectError{Err: err}).Resetting() {
			t.Errorf("%v: not resetting, want resetting", err)
		}
	}
	if (&x11.ConnectError{Err: syscall.ECONNREFUSED}).Resetting() {
		t.Error("a refused connect reads as resetting")
	}
}
