package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vmlab/vmlab/internal/attach"
	"github.com/vmlab/vmlab/internal/pty"
)

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
		in = attach.NewEscapeReader(os.Stdin, cancel)
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
