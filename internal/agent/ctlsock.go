package agent

import (
	"errors"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ctlSock is the agent's end of a fork-server request's control socket
// (forksrv.go): a non-blocking descriptor that it reads and writes with
// poll(2) for the deadline, rather than a net.UnixConn in the runtime's
// poller. The socket lives for one request, a few milliseconds: wrapping
// it costs nine system calls and the poller's thread handoffs, each of
// them costly to a guest under TCG. Its methods are for one goroutine.
type ctlSock struct {
	fd       int
	deadline time.Time // zero: none
}

// newCtlSock takes fd, which it makes non-blocking.
func newCtlSock(fd int) (*ctlSock, error) {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	return &ctlSock{fd: fd}, nil
}

// SetDeadline bounds the reads and writes from now on; the zero time
// removes the bound. Past it they fail with os.ErrDeadlineExceeded.
func (c *ctlSock) SetDeadline(t time.Time) { c.deadline = t }

// await waits until the socket is ready for events, the peer hung up or
// the deadline passed.
func (c *ctlSock) await(events int16) error {
	for {
		timeout := -1
		if !c.deadline.IsZero() {
			left := time.Until(c.deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}}
		n, err := unix.Poll(fds, timeout)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

func (c *ctlSock) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := c.await(unix.POLLIN); err != nil {
				return 0, err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		default:
			return n, nil
		}
	}
}

// Write writes all of p, or fails.
func (c *ctlSock) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(c.fd, p[done:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := c.await(unix.POLLOUT); err != nil {
				return done, err
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return done, err
		default:
			done += n
		}
	}
	return done, nil
}

// CloseWrite ends what the agent sends: the peer reads EOF.
func (c *ctlSock) CloseWrite() error { return unix.Shutdown(c.fd, unix.SHUT_WR) }

func (c *ctlSock) Close() error { return unix.Close(c.fd) }
