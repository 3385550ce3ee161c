package machine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// maxConsoleLines bounds the console lines kept in memory; the log file keeps
// them all.
const maxConsoleLines = 100_000

// console collects a machine's serial console: it splits the byte stream
// into lines, stamps them with the time since the machine started, writes
// them to the machine's log and keeps them for WaitForConsoleText and error
// messages.
type console struct {
	start  time.Time
	log    io.Writer       // the per-machine console log; nil: none
	onLine func(line Line) // nil: nobody listens

	mu      sync.Mutex
	partial []byte
	lines   []Line
	dropped int           // lines dropped from the front of lines
	changed chan struct{} // closed and replaced on every new line
}

// Line is one line of console output.
type Line struct {
	At   time.Duration // since the machine started
	Text string
}

func newConsole(log io.Writer, onLine func(Line)) *console {
	return &console{start: time.Now(), log: log, onLine: onLine, changed: make(chan struct{})}
}

// Write takes QEMU's console output.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.partial = append(c.partial, p...)
	var lines []Line
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, c.appendLocked(c.partial[:i]))
		c.partial = c.partial[i+1:]
	}
	c.mu.Unlock()
	c.emit(lines)
	return len(p), nil
}

// Flush ends a last line that has no newline (QEMU exited mid-line).
func (c *console) Flush() {
	c.mu.Lock()
	var lines []Line
	if len(c.partial) > 0 {
		lines = append(lines, c.appendLocked(c.partial))
		c.partial = nil
	}
	c.mu.Unlock()
	c.emit(lines)
}

func (c *console) appendLocked(b []byte) Line {
	text := strings.TrimRight(string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), "\r")
	l := Line{At: time.Since(c.start), Text: text}
	c.lines = append(c.lines, l)
	if len(c.lines) > maxConsoleLines {
		n := len(c.lines) - maxConsoleLines
		c.lines = append(c.lines[:0:0], c.lines[n:]...)
		c.dropped += n
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return l
}

func (c *console) emit(lines []Line) {
	for _, l := range lines {
		if c.log != nil {
			fmt.Fprintf(c.log, "[%9.3f] %s\n", l.At.Seconds(), l.Text)
		}
		if c.onLine != nil {
			c.onLine(l)
		}
	}
}

// Tail returns the last n lines.
func (c *console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines[max(0, len(c.lines)-n):]
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

// waitFor waits for a line at position from or later that matches re. It
// returns the line and the position after it.
func (c *console) waitFor(ctx context.Context, re *regexp.Regexp, from int) (string, int, error) {
	for {
		c.mu.Lock()
		for i := max(from-c.dropped, 0); i < len(c.lines); i++ {
			if re.MatchString(c.lines[i].Text) {
				c.mu.Unlock()
				return c.lines[i].Text, c.dropped + i + 1, nil
			}
		}
		from = c.dropped + len(c.lines)
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return "", from, ctx.Err()
		}
	}
}
