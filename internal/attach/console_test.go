package attach

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/pty"
)

// TestConsole attaches a terminal to a fake serial console: what the
// console prints reaches the terminal, keys typed (Ctrl-C as a byte: the
// terminal is raw) reach the console, Ctrl-] then q leaves, and the
// terminal is restored.
func TestConsole(t *testing.T) {
	ctl, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	consR, consW := io.Pipe()
	typed := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- Console(t.Context(), term, term, consR, func(p []byte) (int, error) {
			typed <- string(p)
			return len(p), nil
		})
	}()
	go consW.Write([]byte("machine login: "))
	screen := bufio.NewReader(ctl)
	if got, err := screen.ReadString(':'); err != nil || !strings.HasSuffix(got, "machine login:") {
		t.Fatalf("the terminal shows %q, %v; want the console's prompt", got, err)
	}
	ctl.Write([]byte("root\r\x03"))
	var keys string
	for keys != "root\r\x03" {
		select {
		case k := <-typed:
			keys += k
		case <-time.After(10 * time.Second):
			t.Fatalf("the console got %q, want %q", keys, "root\r\x03")
		}
	}
	ctl.Write([]byte{ConsoleEscape, 'q'})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after Ctrl-] q: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-] q did not leave the console")
	}
	if mode, _ := unix.IoctlGetTermios(int(term.Fd()), unix.TCGETS); mode.Lflag&unix.ECHO == 0 || mode.Lflag&unix.ICANON == 0 {
		t.Errorf("the terminal was not restored: lflag %#x", mode.Lflag)
	}
	if _, err := consW.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("the console subscription: got %v on a write, want it closed", err)
	}
}

// TestConsoleContextEnds: a test's deadline ends the attachment though
// the user typed nothing; a write that fails (the machine went down) ends
// it with the error.
func TestConsoleEnds(t *testing.T) {
	ctl, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	ctx, cancel := context.WithCancel(t.Context())
	consR, _ := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Console(ctx, term, term, consR, func(p []byte) (int, error) { return len(p), nil }) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ctx canceled: got %v, want context.Canceled", err)
	}

	down := errors.New("machine down")
	consR, _ = io.Pipe()
	go func() { done <- Console(t.Context(), term, term, consR, func([]byte) (int, error) { return 0, down }) }()
	ctl.Write([]byte("x"))
	if err := <-done; !errors.Is(err, down) {
		t.Errorf("write failed: got %v, want it wrapped", err)
	}
}
