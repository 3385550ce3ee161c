package script

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
)

// backtraceEnds is how many frames a backtrace shows at each end of a deep
// stack. Infinite recursion ends in Starlark's stack overflow at 100,000
// frames, which printed whole made a 100,004-line error; the frames between
// the ends are counted instead.
const backtraceEnds = 10

// backtrace is Starlark's backtrace of e ("Traceback (most recent call
// last): ... Error: msg") with the middle of a deep stack elided: the
// first and last backtraceEnds frames and, between them, how many were
// left out.
func backtrace(e *starlark.EvalError) string {
	stack := e.CallStack
	suffix := ""
	// As Starlark does: the error of a builtin names it, not a frame.
	if last := len(stack) - 1; last >= 0 && stack[last].Pos.Filename() == "<builtin>" {
		suffix = " in " + stack[last].Name
		stack = stack[:last]
	}
	var b strings.Builder
	if len(stack) > 0 {
		b.WriteString("Traceback (most recent call last):\n")
	}
	frame := func(fr starlark.CallFrame) { fmt.Fprintf(&b, "  %s: in %s\n", fr.Pos, fr.Name) }
	if len(stack) <= 2*backtraceEnds+1 {
		for _, fr := range stack {
			frame(fr)
		}
	} else {
		for _, fr := range stack[:backtraceEnds] {
			frame(fr)
		}
		fmt.Fprintf(&b, "  ... %d frames elided ...\n", len(stack)-2*backtraceEnds)
		for _, fr := range stack[len(stack)-backtraceEnds:] {
			frame(fr)
		}
	}
	fmt.Fprintf(&b, "Error%s: %s", suffix, e.Msg)
	return b.String()
}
