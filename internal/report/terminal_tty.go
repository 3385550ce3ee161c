package report

import (
	"io"
	"os"

	"github.com/vmlab/vmlab/internal/pty"
)

// TerminalFor returns the options for a terminal report written to w (a
// command's stdout): on a terminal that can redraw (it has a window size
// and TERM is not "dumb"), colour and the progress block, which follows
// the window as it is resized; no colour when NO_COLOR is set and not
// empty (https://no-color.org); plain text anywhere else, a file, a pipe,
// a CI log.
func TerminalFor(w io.Writer, verbose bool) TerminalOptions {
	opts := TerminalOptions{Verbose: verbose}
	f, isFile := w.(*os.File)
	if !isFile || !IsTerminal(f) {
		return opts
	}
	opts.Color = os.Getenv("NO_COLOR") == ""
	if _, err := pty.GetSize(f); err == nil && os.Getenv("TERM") != "dumb" {
		// A real terminal, not /dev/null: it can redraw lines.
		opts.Progress = true
		opts.Size = func() (cols, rows int) {
			s, err := pty.GetSize(f)
			if err != nil {
				return 0, 0
			}
			return int(s.Cols), int(s.Rows)
		}
	}
	return opts
}
