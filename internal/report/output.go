package report

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Limits on what events and reports keep of a command. An output up to
// outputWhole bytes is kept whole; a longer one keeps its first and last
// outputEnd bytes and a line saying how much was left out and which file
// holds it all (package machine writes outputs over 1 MiB to a file, so
// every output cut here has one when it came from a machine). 1 GB of
// output once made a 1.5 GB events.jsonl.
const (
	outputWhole   = 1 << 20
	outputEnd     = 64 << 10
	commandLimit  = 4 << 10 // a command's text: they may be up to 1 MiB long
	lineNearbyCut = 200     // a cut moves to a line boundary this close
)

// bound cuts e's command and outputs to the limits above.
func bound(e *Event) {
	if len(e.Command) > commandLimit {
		e.Command = fmt.Sprintf("%s... [%d bytes in all]", e.Command[:commandLimit], len(e.Command))
	}
	e.Stdout = headTail(e.Stdout, "stdout", e.StdoutFile)
	e.Stderr = headTail(e.Stderr, "stderr", e.StderrFile)
}

// headTail keeps s whole when it is short, else its head and tail with a
// line between them. With a file holding the whole output, the tail and
// the size come from the file: s may be only the output's beginning (a
// command over machine.OutputLimit).
func headTail(s, stream, file string) string {
	size, tail := int64(len(s)), ""
	if file != "" {
		if fsize, ftail, err := fileTail(file, outputEnd); err == nil && fsize > size {
			size, tail = fsize, ftail
		}
	}
	if size <= outputWhole {
		return s
	}
	head := s[:outputEnd]
	if i := strings.LastIndexByte(head, '\n'); i >= outputEnd-lineNearbyCut {
		head = head[:i+1]
	}
	if tail == "" {
		tail = s[len(s)-outputEnd:]
	}
	if i := strings.IndexByte(tail, '\n'); i >= 0 && i < lineNearbyCut {
		tail = tail[i+1:]
	}
	where := "the whole " + stream + " is not kept"
	if file != "" {
		where = "the whole " + stream + " is in " + file
	}
	left := size - int64(len(head)) - int64(len(tail))
	if !strings.HasSuffix(head, "\n") {
		head += "\n"
	}
	return fmt.Sprintf("%s[... %d of %d bytes left out; %s ...]\n%s", head, left, size, where, tail)
}

// fileTail returns the size of the file at path and its last n bytes.
func fileTail(path string, n int64) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0, "", err
	}
	return fi.Size(), string(b), nil
}
