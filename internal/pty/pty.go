// Package pty opens pseudo-terminal pairs and sets their window size. The
// guest's agent uses it to give a shell a terminal; the host's tests use it
// to drive vmlab's own interactive commands as a user at a terminal would.
// Linux only, through /dev/ptmx (devpts), with no cgo.
package pty

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open returns a new pseudo-terminal's controller (master) and terminal
// (slave) ends. Neither becomes the caller's controlling terminal; a child
// gets the terminal as its controlling one through
// SysProcAttr{Setsid: true, Setctty: true} with the terminal as its stdin.
func Open() (controller, terminal *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	controller = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		controller.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		controller.Close()
		return nil, nil, fmt.Errorf("get pty number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	tfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		controller.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return controller, os.NewFile(uintptr(tfd), name), nil
}

// Size is a terminal's window size in character cells.
type Size struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// SetSize sets the window size of the terminal f belongs to (either end);
// the kernel sends SIGWINCH to the terminal's foreground process group.
func SetSize(f *os.File, s Size) error {
	ws := &unix.Winsize{Row: s.Rows, Col: s.Cols}
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("set window size of %s: %w", f.Name(), err)
	}
	return nil
}

// GetSize returns the window size of the terminal f belongs to.
func GetSize(f *os.File) (Size, error) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return Size{}, fmt.Errorf("get window size of %s: %w", f.Name(), err)
	}
	return Size{Rows: ws.Row, Cols: ws.Col}, nil
}

// IsTerminal says whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
