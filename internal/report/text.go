package report

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// clean makes one line of text safe to show: it drops ANSI escape
// sequences, other control characters (tabs stay) and U+FFFE and U+FFFF.
// Guests print control characters freely (systemd colours its status
// lines, getty clears the screen); on our terminal they would garble the
// report, and XML allows none of these.
func clean(s string) string {
	if !needsCleaning(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			i = skipEscape(s, i)
		case c == '\t':
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r >= 0x80 && r < 0xa0 || r == 0xfffe || r == 0xffff { // C1 controls, e.g. a raw CSI
				i += n
				continue
			}
			b.WriteRune(r) // an invalid byte becomes U+FFFD
			i += n
		}
	}
	return b.String()
}

func needsCleaning(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || r >= utf8.RuneError && r <= 0xffff {
			return true
		}
	}
	return false
}

// skipEscape returns the index just past the escape sequence that starts
// at s[i] (an ESC): a CSI ("ESC [" params, ended by a byte in 0x40-0x7e),
// an OSC ("ESC ]", ended by BEL or "ESC \"), or ESC and one more byte.
func skipEscape(s string, i int) int {
	i++
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		for i++; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return i
	case ']':
		for i++; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	}
	return i + 1
}

// lines splits text into cleaned lines, dropping the final newline; empty
// text has no lines.
func lines(text string) []string {
	text = strings.TrimRight(text, "\r\n")
	if text == "" {
		return nil
	}
	ls := strings.Split(text, "\n")
	for i, l := range ls {
		ls[i] = clean(l)
	}
	return ls
}

// cleanText is text with every line cleaned.
func cleanText(text string) string { return strings.Join(lines(text), "\n") }

// firstLine is the first line of text, with " ..." when more follow: for
// commands, which may be whole scripts, on one-line summaries.
func firstLine(text string) string {
	ls := lines(text)
	switch len(ls) {
	case 0:
		return ""
	case 1:
		return ls[0]
	}
	return ls[0] + " ..."
}

// seconds is d as the reports show durations: seconds, two decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// failed reports whether a command failed its test: the script sets Error
// then. A non-zero exit alone may be what the script wanted (fail()).
func failed(cmd *Event) bool { return cmd.Error != "" }

// failingCommand returns the command that failed a test or subtest at
// path: the test's last command, if that failed and ran inside path. A
// failed command followed by a good one did not cause the failure (the
// script expected it, as with fail()), so only the last one counts.
func failingCommand(last *Event, path []string) *Event {
	if last == nil || !failed(last) || !hasPrefix(last.Path, path) {
		return nil
	}
	return last
}

func hasPrefix(path, prefix []string) bool {
	if len(prefix) > len(path) {
		return false
	}
	for i := range prefix {
		if path[i] != prefix[i] {
			return false
		}
	}
	return true
}

// backtrace is a failure's Where without its last line when that line
// only repeats the error: Starlark's backtraces end in "Error in fn: msg",
// and the reports show msg just above.
func backtrace(where, msg string) string {
	where = strings.TrimRight(where, "\n")
	if msg == "" || !strings.HasSuffix(where, ": "+msg) {
		return where
	}
	i := strings.LastIndex(where[:len(where)-len(msg)], "\nError")
	if i < 0 {
		if strings.HasPrefix(where, "Error") {
			return ""
		}
		return where
	}
	return where[:i]
}

// capTail keeps the last limit bytes of s, cut at a line start when one
// is near, and says how much went. The result is a new string (the join
// copies), so the original can go.
func capTail(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := len(s) - limit
	if i := strings.IndexByte(s[cut:], '\n'); i >= 0 && i < 200 {
		cut += i + 1
	}
	return fmt.Sprintf("[%d earlier bytes dropped]\n", cut) + s[cut:]
}

// consoleTail is how many console lines of the failing machine the
// reports show with a failure.
const consoleTail = 20

// outcome is how a command ended, as the reports say it: "exit 1",
// "ok", "timed out after 10s", "machine down", "interrupted" or "error".
// A call that returned no exit status never reads as "exit 0".
func outcome(e *Event) string {
	switch e.Outcome {
	case Done:
		return "ok"
	case TimedOut:
		if e.Timeout > 0 {
			return "timed out after " + e.Timeout.String()
		}
		return "timed out"
	case MachineDown:
		return "machine down"
	case Interrupted:
		return "interrupted"
	case Errored:
		return "error"
	case "":
		// An older emitter's failed call without a status: not "exit 0".
		if e.Error != "" && e.Exit == 0 {
			return "error"
		}
	}
	return fmt.Sprintf("exit %d", e.Exit)
}

// commandError is what a report says of a failed command besides its
// outcome: nothing when its exit status failed it, else the error's first
// line (fail() saw a zero exit, a wait timed out, the machine went down).
func commandError(e *Event) string {
	if e.Error == "" || e.Exit != 0 && (e.Outcome == Exited || e.Outcome == "") {
		return ""
	}
	return firstLine(e.Error)
}

// failureError is a step's error; its first line only when a command
// failed it, whose output the reports show under the command (the error
// of machine.ExitError carries it too).
func failureError(s *step) string {
	text := cleanText(s.Error)
	if s.FailedCmd != nil {
		text, _, _ = strings.Cut(text, "\n")
	}
	return text
}

// consoleSection heads the console lines a machine error carries (see
// machine.TimeoutError, DownError, StoppedError): the last section.
const consoleSection = "\n--- last console lines ---\n"

// withoutConsole is msg without the console lines a machine error carries,
// for a report that shows the machine's console tail beside the error:
// the lines are shown once, not in both.
func withoutConsole(msg string) string {
	head, _, _ := strings.Cut(msg, consoleSection)
	return head
}

// errorMachine is the machine a failure names at its start ("vm: unit
// web: timed out"), if it is one of machines.
func errorMachine(msg string, machines []string) string {
	name, _, ok := strings.Cut(msg, ": ")
	if ok && slices.Contains(machines, name) {
		return name
	}
	return ""
}

// bootText is what the reports say of a Boot event, after the machine's
// name: "booted in 2.50s (guest uptime at ...)" or "did not boot after 0.05s".
func bootText(e Event) string {
	switch {
	case e.Error != "":
		return "did not boot after " + seconds(e.Duration)
	case e.Text != "":
		return "booted in " + seconds(e.Duration) + " (guest uptime at " + e.Text + ")"
	}
	return "booted in " + seconds(e.Duration)
}

// plural is "1 console line", "3 console lines".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
