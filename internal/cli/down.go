package cli

import (
	"context"
	"fmt"
)

// runDown is `vmlab down`: ask the lab (the only one up, or -lab's) to
// stop its machines, and wait until it has.
func runDown(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "down", "")
	name := labFlag(fs)
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 }); !ok {
		return code
	}
	cl := dialLab(ctx, e, *name)
	if cl == nil {
		return exitFail
	}
	defer cl.Close()
	if err := cl.Down(ctx); err != nil {
		e.errorf("%v", err)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "lab %s is down\n", cl.Lab)
	return exitOK
}
