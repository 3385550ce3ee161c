package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vmlab/vmlab/internal/pty"
)

// ConsoleEscape is the key that starts an escape on a serial console
// (vmlab console, console_interact()): Ctrl-] (as telnet's), then q
// leaves; Ctrl-] twice sends one.
const ConsoleEscape = 0x1d

// Console attaches the terminal stdin (and stdout) to a machine's serial
// console, as `vmlab console` does for a lab that is up: stdin is raw, so
// every key goes to write (the guest's ttyS0) but the escape, and what the
// console prints (read from console, a subscription it closes) goes to
// stdout. It returns nil when the user leaves (Ctrl-] then q), ctx's
// error when ctx ends, and write's error when the machine cannot take the
// keys (it went down). The terminal is restored, and nothing keeps
// reading stdin, when it returns.
func Console(ctx context.Context, stdin, stdout *os.File, console io.ReadCloser, write func([]byte) (int, error)) error {
	in, err := newInput(stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	restore, err := pty.MakeRaw(stdin)
	if err != nil {
		return err
	}
	defer restore()
	stop := context.AfterFunc(ctx, func() { in.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer console.Close() // ends the copy below
	wg.Go(func() { io.Copy(stdout, console) })

	keys := NewEscapeReader(in, func() {})
	buf := make([]byte, 256)
	for {
		n, err := keys.Read(buf)
		if n > 0 {
			if _, werr := write(buf[:n]); werr != nil {
				return fmt.Errorf("type on the serial console: %w", werr)
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		}
	}
}

// NewEscapeReader passes the keys r reads through, except the escape:
// ConsoleEscape then q calls leave and ends the keys (io.EOF),
// ConsoleEscape twice is one ConsoleEscape, ConsoleEscape then another key
// is both keys.
func NewEscapeReader(r io.Reader, leave func()) io.Reader {
	return &escapeReader{r: r, leave: leave}
}

type escapeReader struct {
	r       io.Reader
	leave   func()
	pending bool   // the last key read was the escape
	left    []byte // keys filtered but not yet returned
	done    bool   // q was pressed: EOF once left is returned
}

func (e *escapeReader) Read(p []byte) (int, error) {
	for len(e.left) == 0 && !e.done {
		buf := make([]byte, max(len(p), 1))
		n, err := e.r.Read(buf)
		e.left = e.filter(buf[:n])
		if err != nil && len(e.left) == 0 {
			return 0, err
		}
	}
	if len(e.left) == 0 {
		return 0, io.EOF
	}
	n := copy(p, e.left)
	e.left = e.left[n:]
	return n, nil
}

// filter applies the escape to keys, and calls leave on the escape then q.
func (e *escapeReader) filter(keys []byte) []byte {
	var out []byte
	for _, b := range keys {
		switch {
		case e.done:
			return out
		case e.pending && b == 'q':
			e.done = true
			e.leave()
		case e.pending && b == ConsoleEscape:
			out = append(out, b)
			e.pending = false
		case e.pending:
			out = append(out, ConsoleEscape, b)
			e.pending = false
		case b == ConsoleEscape:
			e.pending = true
		default:
			out = append(out, b)
		}
	}
	return out
}
