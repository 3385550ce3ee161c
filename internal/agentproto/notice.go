package agentproto

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Notice is the payload of a Notice frame (TNotice, stream 0, guest to
// host): something the host did not ask about but wants on its record.
// Exactly one field is set; a host ignores a notice whose fields it does
// not know. Notices start after the agent's Hello (version 9).
type Notice struct {
	// ServiceExit: a declared service's command ended on its own (not
	// stopped by a power request or the agent stopping).
	ServiceExit *ServiceExit `json:"service_exit,omitempty"`
}

// MaxNoticeLine bounds each line of a ServiceExit's Tail, so that a notice
// always fits in a frame: NoticeTail lines of it are 10 KiB.
const MaxNoticeLine = 512

// NoticeTail is how many of a service's last output lines a ServiceExit
// carries.
const NoticeTail = 20

// ServiceExit says how a run of a declared service ended.
type ServiceExit struct {
	Name string `json:"name"`
	// Exit is the exit status; -1 when a signal killed it.
	Exit int `json:"exit"`
	// Signal describes the killing signal ("segmentation fault"), and
	// SignalNumber is its number.
	Signal       string `json:"signal,omitempty"`
	SignalNumber int    `json:"signal_number,omitempty"`
	// Error says why the command could not run at all (no such user);
	// Exit is then -1 and Signal empty.
	Error string `json:"error,omitempty"`
	// Restart says the agent restarts it (its restart policy); false: it
	// stays down.
	Restart bool `json:"restart,omitempty"`
	// Exits counts the service's runs that ended since boot, this one
	// included. The agent tells the first three exits, then only the
	// 4th, 8th, 16th...: a service that crashes at once and is restarted
	// ends 5 times a second. The exit after which the service stays down
	// (Restart false) is always told.
	Exits int `json:"exits,omitempty"`
	// Tail is the run's last lines of output (stdout and stderr as they
	// came), at most NoticeTail, each at most MaxNoticeLine bytes.
	Tail []string `json:"tail,omitempty"`
}

// String says how the service ended, in one line: "service x exited with
// status 1", "service x was killed by signal 11 (segmentation fault);
// restarting".
func (e ServiceExit) String() string {
	var how string
	switch {
	case e.Error != "":
		how = "could not start: " + e.Error
	case e.SignalNumber != 0:
		how = fmt.Sprintf("was killed by signal %d", e.SignalNumber)
		if e.Signal != "" {
			how += " (" + e.Signal + ")"
		}
	default:
		how = fmt.Sprintf("exited with status %d", e.Exit)
	}
	s := "service " + e.Name + " " + how
	if e.Exits > 1 {
		s += fmt.Sprintf(" (exit %d since boot)", e.Exits)
	}
	if e.Restart {
		s += "; restarting"
	}
	return s
}

// markerOnly is a line with nothing but a log marker: Xorg ends its fatal
// errors with several "(EE) " lines.
var markerOnly = regexp.MustCompile(`^\s*(\([A-Z!?=+*-]{2}\))?\s*$`)

// TellingLines returns the last n of lines that say something, trimmed:
// neither blank nor a bare log marker. A dead Xorg's last line is "(EE) ",
// and its last five hold one line of news.
func TellingLines(lines []string, n int) []string {
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if !markerOnly.MatchString(lines[i]) {
			out = append(out, strings.TrimSpace(lines[i]))
		}
	}
	slices.Reverse(out)
	return out
}

// NoticeLines bounds lines for a ServiceExit's Tail: the last NoticeTail,
// each cut to MaxNoticeLine bytes (on a rune boundary) with "…" after.
func NoticeLines(lines []string) []string {
	lines = lines[max(0, len(lines)-NoticeTail):]
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > MaxNoticeLine {
			l = strings.ToValidUTF8(l[:MaxNoticeLine], "") + "…"
		}
		out[i] = l
	}
	return out
}
