package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vmlab/vmlab/internal/pty"
)

// consoleEscape is the key that starts an escape on vmlab console:
// Ctrl-] (as telnet's), then q leaves; Ctrl-] twice sends one.
const consoleEscape = 0x1d

// runConsole is `vmlab console MACHINE`: the machine's serial console,
// read and write, from the lab that is up. On a terminal, the terminal is
// raw (every key goes to the guest) and Ctrl-] then q leaves; otherwise
// stdin is sent as it is and the console streams until interrupted.
func runConsole(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "console", "MACHINE")
	name := labFlag(fs)
	if ok, code := parseMixed(e, fs, args, func() bool { return fs.NArg() == 1 }); !ok {
		return code
	}
	cl := dialLab(ctx, e, *name)
	if cl == nil {
		return exitFail
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := io.Reader(os.Stdin)
	nl := "\n"
	if pty.IsTerminal(os.Stdin) {
		restore, err := pty.MakeRaw(os.Stdin)
		if err != nil {
			e.errorf("console: %v", err)
			return exitInternal
		}
		defer restore()
		in = &escapeReader{r: os.Stdin, leave: cancel}
		nl = "\r\n"
		fmt.Fprintf(e.stderr, "vmlab: console of %s in lab %s; Ctrl-] then q leaves%s", fs.Arg(0), cl.Lab, nl)
	}
	notice := func(s string) { fmt.Fprintf(e.stderr, "%svmlab: %s%s", nl, s, nl) }
	if err := cl.Console(ctx, fs.Arg(0), in, e.stdout, notice); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: %v%s", err, nl)
		return exitFail
	}
	fmt.Fprintf(e.stderr, "%svmlab: left the console of %s%s", nl, fs.Arg(0), nl)
	return exitOK
}

// escapeReader passes keys through, except the escape: Ctrl-] then q
// calls leave, Ctrl-] Ctrl-] is one Ctrl-], Ctrl-] then another key is
// both keys.
type escapeReader struct {
	r       io.Reader
	leave   func()
	pending bool   // the last key read was Ctrl-]
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

// filter applies the escape to keys, and calls leave on Ctrl-] q.
func (e *escapeReader) filter(keys []byte) []byte {
	var out []byte
	for _, b := range keys {
		switch {
		case e.done:
			return out
		case e.pending && b == 'q':
			e.done = true
			e.leave()
		case e.pending && b == consoleEscape:
			out = append(out, b)
			e.pending = false
		case e.pending:
			out = append(out, consoleEscape, b)
			e.pending = false
		case b == consoleEscape:
			e.pending = true
		default:
			out = append(out, b)
		}
	}
	return out
}
