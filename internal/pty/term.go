package pty

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// MakeRaw puts the terminal f in raw mode: every key, Ctrl-C and Ctrl-Z
// included, reaches the reader as a byte, and nothing is echoed. restore
// puts back the mode f had; call it however the session ends.
func MakeRaw(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal mode of %s: %w", f.Name(), err)
	}
	raw := *old
	// What cfmakeraw(3) clears and sets.
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, fmt.Errorf("set raw mode on %s: %w", f.Name(), err)
	}
	return func() error {
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, old); err != nil {
			return fmt.Errorf("restore terminal mode of %s: %w", f.Name(), err)
		}
		return nil
	}, nil
}

// WatchSize sends f's window size at once and again each time it changes
// (SIGWINCH), until ctx ends; then the channel is closed. A size that
// cannot be read is skipped.
func WatchSize(ctx context.Context, f *os.File) <-chan Size {
	ch := make(chan Size, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		defer close(ch)
		defer signal.Stop(winch)
		for {
			if s, err := GetSize(f); err == nil {
				select {
				case ch <- s:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-winch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
