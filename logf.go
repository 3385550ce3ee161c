package vmlab

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// logfTo returns the logf the lab's machines log through (booting, up in
// 2.1 s, went down): to t's output, at the line of the test's code that
// caused the log. t.Logf would name the line in vmlab's machine.go that
// logs, and t.Helper cannot mark vmlab's internal frames. A log with no
// caller outside vmlab (one from a goroutine of vmlab's, as StartAll's
// boots are) names the line site returns, if any.
func logfTo(t testing.TB, site func() string) func(format string, args ...any) {
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		at := callerOutside()
		if at == "" && site != nil {
			at = site()
		}
		if at != "" {
			msg = at + ": " + msg
		}
		fmt.Fprintln(t.Output(), msg)
	}
}

// callerOutside returns "file.go:line" of the innermost caller outside
// vmlab's packages (and sync's, for New's once), or "" when the stack
// reaches testing or the goroutine's start first.
func callerOutside() string {
	var pcs [64]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "testing."), strings.HasPrefix(f.Function, "runtime."):
			return ""
		case !inVmlab(f.Function) && !strings.HasPrefix(f.Function, "sync."):
			return fmt.Sprintf("%s:%d", filepath.Base(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}

// inVmlab says whether the function named fn (as runtime names it:
// "github.com/vmlab/vmlab/internal/machine.(*Machine).logf") is vmlab's:
// this package or an internal one, not its tests or examples.
func inVmlab(fn string) bool {
	return strings.HasPrefix(fn, modulePath+".") || strings.HasPrefix(fn, modulePath+"/internal/")
}
