package machine

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// OutputLimit is the most of each of a command's standard output and
// standard error that Execute, Succeed and Fail return: 16 MiB. A command
// that prints more fails with an *OutputError naming the file that holds
// the whole output; the driver's memory stays bounded whatever a guest
// prints (1 GB of output once made it peak at 8.66 GB).
const OutputLimit = 16 << 20

// SpillSize is the length past which an output is also written whole to a
// file in the machine's directory (Result.StdoutFile, StderrFile): reports
// keep only the head and tail of a long output, and link to the file.
const SpillSize = 1 << 20

// outputLimit and spillSize are OutputLimit and SpillSize, lowered by tests
// so that they need not print megabytes.
var outputLimit, spillSize = OutputLimit, SpillSize

// commandSeq numbers the commands of this process, naming their output
// files (output/command-N.stdout in the machine's directory).
var commandSeq atomic.Uint64

// OutputError says a command printed more than OutputLimit on one of its
// streams. Result still holds the first OutputLimit bytes of each.
type OutputError struct {
	Machine, Command string
	Stream           string // "stdout" or "stderr"
	Size             int64  // bytes the command printed on Stream
	Limit            int
	File             string // holds the whole stream; empty when it could not be written
	FileErr          error  // why File could not be written
}

func (e *OutputError) Error() string {
	where := "the whole output is in " + e.File
	if e.File == "" {
		where = fmt.Sprintf("the whole output could not be kept: %v", e.FileErr)
	}
	return fmt.Sprintf("%s: command %s: printed %d bytes on %s, over the %s that succeed, fail and execute return; %s "+
		"(or have the command write it to a file in the guest and copy_from_vm that)",
		e.Machine, shortCommand(e.Command), e.Size, e.Stream, sizeText(e.Limit), where)
}

// sizeText is "16 MiB", "64 KiB" or "100 bytes".
func sizeText(n int) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// shortCommand quotes a command for a message, cut to its first 200 bytes:
// a command may be up to 1 MiB long.
func shortCommand(command string) string {
	const limit = 200
	if len(command) <= limit {
		return fmt.Sprintf("%q", command)
	}
	return fmt.Sprintf("%q... (%d bytes)", command[:limit], len(command))
}

// capture collects one output stream of a command: in memory up to limit
// bytes, and, once it passes spill bytes, in a file that gets every byte.
// It is written from the agent channel's reading goroutine, so it blocks
// on nothing but the disk; its lock covers a caller that gives up on the
// command while output still arrives.
type capture struct {
	path         string // the file, created once the output passes spill
	limit, spill int
	streamed     bool // the caller gets every byte (Stream): no file, no error

	mu     sync.Mutex
	mem    strings.Builder
	n      int64 // bytes written in all
	file   *os.File
	err    error // the first error creating or writing the file
	closed bool
}

func newCapture(path string, streamed bool) *capture {
	c := &capture{path: path, limit: outputLimit, spill: min(spillSize, outputLimit), streamed: streamed}
	if streamed {
		c.spill = math.MaxInt
	}
	return c
}

// Write keeps p and never fails: an error writing the file is kept for
// the caller, and the channel must go on either way.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	before := c.n
	c.n += int64(len(p))
	if room := c.limit - c.mem.Len(); room > 0 {
		c.mem.Write(p[:min(room, len(p))])
	}
	switch {
	case c.err != nil:
	case c.file != nil:
		c.write(p)
	case c.n > int64(c.spill):
		// Every byte so far is in memory: spill <= limit.
		c.open()
		c.write([]byte(c.mem.String()[:before]))
		c.write(p)
	}
	return len(p), nil
}

func (c *capture) open() {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		c.err = err
		return
	}
	c.file, c.err = os.OpenFile(c.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
}

func (c *capture) write(p []byte) {
	if c.err == nil {
		_, c.err = c.file.Write(p)
	}
}

// close ends the capture: later writes are dropped. It returns what was
// kept in memory, the file holding the whole output (empty when the output
// stayed short or the file failed), the total size and the file's error.
func (c *capture) close() (text, file string, size int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.file != nil {
		if cerr := c.file.Close(); c.err == nil {
			c.err = cerr
		}
	}
	c.closed = true
	if c.file != nil && c.err == nil {
		file = c.path
	}
	return c.mem.String(), file, c.n, c.err
}
