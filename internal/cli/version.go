package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
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
	fmt.Fprintln(e.stdout, versionLine(bi))
	return exitOK
}

// versionLine is "vmlab VERSION [revision REV[, modified] (TIME)] GO OS/ARCH".
// A binary built from a checkout (go build) has version "(devel)" and the
// revision; one installed with go install module@version has the version.
func versionLine(bi *debug.BuildInfo) string {
	version := "(unknown)"
	if bi != nil && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	parts := []string{"vmlab", version}
	var rev, at string
	modified := false
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev != "" {
		r := "revision " + rev
		if modified {
			r += ", modified"
		}
		if at != "" {
			r += " (" + at + ")"
		}
		parts = append(parts, r)
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, " ")
}
