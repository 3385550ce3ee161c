package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/vmlab/vmlab/internal/version"
)

// runVersion is `vmlab version`: the module version and, when the build
// recorded them, the VCS revision, its time and whether the tree was
// modified.
func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "version", "")
	if ok, code := parse(e, fs, args, func() bool { return fs.NArg() == 0 }); !ok {
		return code
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(e.stdout, version.Line(bi))
	return exitOK
}
