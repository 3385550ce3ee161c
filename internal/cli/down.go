package cli

import (
	"context"
	"fmt"

	"github.com/vmlab/vmlab/internal/control"
)

// runDown is `vmlab down`: ask the lab (the only one up, or -lab's) to
// stop its machines, and wait until it has.
func runDown(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "down", "")
	name := fs.String("lab", "", "stop the lab called `name` (default: the only lab up)")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 }); !ok {
		return code
	}
	cl, err := control.Dial(ctx, *name, e.errorf)
	if err != nil {
		e.errorf("%v", err)
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
