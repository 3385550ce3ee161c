package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCtlSock checks the control socket's reads and writes: what the peer
// sends arrives whole, a read past the deadline fails with
// os.ErrDeadlineExceeded, a write larger than the socket's buffer waits for
// the peer to read, and the peer's close is EOF.
func TestCtlSock(t *testing.T) {
	c, peer := ctlPair(t)

	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	var b [4]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing sent: got %v, want the deadline", err)
	}

	c.SetDeadline(time.Time{})
	big := bytes.Repeat([]byte("vmlab"), 200_000) // 1 MB: more than the socket holds
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if n, err := c.Write(big); err != nil || n != len(big) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not what was written", len(b))
	}

	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
		t.Fatalf("write that the peer does not read: %d, %v; want the deadline", n, err)
	}

	// A new pair: the peer's close with unread bytes would be a reset.
	c, peer = ctlPair(t)
	if _, err := peer.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	var rest []byte
	for {
		n, err := c.Read(b[:])
		rest = append(rest, b[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(rest) != "abc" {
		t.Errorf("read %q before EOF, want \"abc\"", rest)
	}
}

func ctlPair(t *testing.T) (*ctlSock, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCtlSock(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() {
		c.Close()
		peer.Close()
	})
	return c, peer
}
