// Package version names this build of vmlab, from what the Go toolchain
// recorded in the binary: the module version and, when the build had a
// VCS checkout, its revision. Every place that says which vmlab it is
// (vmlab version, the control socket's hello, a state directory) asks
// here, so they say the same thing.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Short is the module version with the revision's first 12 characters
// when the build recorded one: "v0.4.0", "(devel) 1a2b3c4d5e6f"; "(devel)"
// when the binary carries no build information.
func Short() string {
	bi, _ := debug.ReadBuildInfo()
	return short(bi)
}

func short(bi *debug.BuildInfo) string {
	if bi == nil || bi.Main.Version == "" {
		return "(devel)"
	}
	v := bi.Main.Version
	if rev := setting(bi, "vcs.revision"); len(rev) >= 12 {
		v += " " + rev[:12]
	}
	return v
}

// Line is vmlab version's line: "vmlab VERSION [revision REV[, modified]
// (TIME)] GO OS/ARCH". A binary built from a checkout (go build) has
// version "(devel)" and the revision; one installed with go install
// module@version has the version.
func Line(bi *debug.BuildInfo) string {
	version := "(unknown)"
	if bi != nil && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	parts := []string{"vmlab", version}
	if rev := setting(bi, "vcs.revision"); rev != "" {
		r := "revision " + rev
		if setting(bi, "vcs.modified") == "true" {
			r += ", modified"
		}
		if at := setting(bi, "vcs.time"); at != "" {
			r += " (" + at + ")"
		}
		parts = append(parts, r)
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, " ")
}

// setting is the build setting key, "" when bi has none.
func setting(bi *debug.BuildInfo, key string) string {
	if bi == nil {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
