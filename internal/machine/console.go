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

	"github.com/vmlab/vmlab/internal/agentproto"
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
	raw    rawConsole      // the bytes as they came, for subscribers

	mu      sync.Mutex
	partial []byte
	lines   []Line
	dropped int           // lines dropped from the front of lines
	changed chan struct{} // closed and replaced on every new line
	// reasons are this boot's lines that say why a guest failed (see
	// reasonPatterns), kept apart from lines so that a tail shows them
	// however long the stack trace after them.
	reasons  []reason
	rebooted bool // the kernel said it powers off or restarts
}

// Line is one line of console output.
type Line struct {
	At   time.Duration // since the machine started
	Text string
	// Reason says the line tells why the guest failed (a panic, an oops,
	// an OOM kill): a report keeps it in the tail it shows, however long
	// the stack trace after it (see Tail).
	Reason bool
}

func newConsole(log io.Writer, onLine func(Line)) *console {
	return &console{start: time.Now(), log: log, onLine: onLine, changed: make(chan struct{})}
}

// Write takes QEMU's console output.
func (c *console) Write(p []byte) (int, error) {
	c.raw.write(p)
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
	l.Reason = c.noteLocked(text)
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

// Tail returns the last n lines, after this boot's reason lines (a panic's,
// an oops's first lines, OOM kills) that came before them and a "..." line:
// a panic's stack trace runs 40-80 lines, so the last 20 alone hold frames
// and not what happened.
func (c *console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := max(0, len(c.lines)-n)
	var out []string
	for _, r := range c.reasons {
		if r.pos < c.dropped+first {
			out = append(out, r.text)
		}
	}
	if len(out) > 0 && c.reasons[len(out)-1].pos+1 < c.dropped+first {
		out = append(out, "...")
	}
	for _, l := range c.lines[first:] {
		out = append(out, l.Text)
	}
	return out
}

// ShownTail is Tail for people (errors, reports): a line that quotes the
// kernel command line (Xorg's banner does) carries the ~900-character boot
// parameter, which would fill the tail, shortened to "vmlab=…".
func (c *console) ShownTail(n int) []string {
	out := c.Tail(n)
	for i, l := range out {
		out[i] = agentproto.ElideBootParam(l)
	}
	return out
}

// reason is a console line that says why a guest failed.
type reason struct {
	kind string // "kernel panic", "kernel oops", "out of memory"
	text string // the whole line
	what string // the part that explains it
	pos  int    // the line's position, counting dropped lines
}

// maxReasons bounds the reason lines kept: the first ones are the cause, the
// later ones its consequences (an oops in init, then the panic).
const maxReasons = 8

// reasonPatterns match the kernel's lines that say why a guest failed. The
// first group is the explanation.
var reasonPatterns = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"kernel panic", regexp.MustCompile(`Kernel panic - not syncing: (.*)`)},
	{"kernel oops", regexp.MustCompile(`((?:BUG: |kernel BUG at |Oops: |general protection fault).*)`)},
	{"out of memory", regexp.MustCompile(`(Out of memory.*)`)},
}

// rebootLine is the kernel's last word before it powers off, halts or
// restarts (pr_emerg, so "quiet" keeps it), or resets at once on sysrq "b"
// (sysrq raises the console's log level for its own line).
var rebootLine = regexp.MustCompile(`reboot: (Power down|Restarting system|System halted)|sysrq: Resetting`)

// noteLocked records a line that explains a failure, and reports whether
// the line is one.
func (c *console) noteLocked(text string) bool {
	if rebootLine.MatchString(text) {
		c.rebooted = true
	}
	for _, p := range reasonPatterns {
		if m := p.re.FindStringSubmatch(text); m != nil {
			if len(c.reasons) < maxReasons {
				c.reasons = append(c.reasons, reason{kind: p.kind, text: text, what: m[1], pos: c.dropped + len(c.lines)})
			}
			return true
		}
	}
	return false
}

// newBoot forgets the reasons of an earlier boot.
func (c *console) newBoot() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons, c.rebooted = nil, false
}

// failure names what this boot's console says went wrong: a panic (what
// brought the machine down), else an oops, else an OOM kill; "" when it
// says nothing. cleanExit says QEMU exited with status 0: with -no-reboot
// that is a reset or power-off, and one the kernel did not announce is a
// CPU reset, which a triple fault causes (QEMU 7.2 prints nothing for one).
func (c *console) failure(cleanExit bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kind := range []string{"kernel panic", "kernel oops", "out of memory"} {
		for _, r := range c.reasons {
			if r.kind == kind {
				return fmt.Sprintf("%s %q", kind, r.what)
			}
		}
	}
	if cleanExit && !c.rebooted {
		return "the CPU reset with no word from the kernel (a triple fault?)"
	}
	return ""
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
