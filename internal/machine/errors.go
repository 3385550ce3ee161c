package machine

import (
	"fmt"
	"strings"
	"time"
)

// consoleTail is how many console lines an error shows.
const consoleTail = 20

// ExitError is returned by Succeed for a non-zero exit and by Fail for a
// zero one.
type ExitError struct {
	Machine, Command string
	Status           int
	Signal           string // set when a signal killed the command
	Stdout, Stderr   string
	WantSuccess      bool
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.WantSuccess {
		fmt.Fprintf(&b, "%s: command %s failed with exit status %d", e.Machine, shortCommand(e.Command), e.Status)
		if e.Signal != "" {
			fmt.Fprintf(&b, " (%s)", e.Signal)
		}
	} else {
		fmt.Fprintf(&b, "%s: command %s succeeded, but it was expected to fail", e.Machine, shortCommand(e.Command))
	}
	section(&b, "stdout", e.Stdout)
	section(&b, "stderr", e.Stderr)
	return b.String()
}

// TimeoutError says a command or wait did not finish in time.
type TimeoutError struct {
	Machine string
	What    string // the command or condition
	Timeout time.Duration
	Output  string   // what the command printed, if anything
	Console []string // the machine's last console lines
	// OutputName names Output in the message when it is not a command's
	// output ("tty 1's last text"); empty is "last output".
	OutputName string
	// Services says which of the machine's declared services exited since
	// it booted, and how, one a line: the usual reason a wait times out.
	Services string
}

func (e *TimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: timed out after %v", e.Machine, e.What, e.Timeout)
	section(&b, "services that exited", e.Services)
	if e.OutputName != "" {
		section(&b, e.OutputName, e.Output)
		return withTails(b.String(), "", e.Console)
	}
	return withTails(b.String(), e.Output, e.Console)
}

// StoppedError says the caller stopped a command or wait before it ended:
// its context ended, because a test's deadline passed or the run was
// interrupted. Cause says which (context.Cause); errors.Is matches the
// context's own error too.
type StoppedError struct {
	Machine string
	What    string
	Cause   error
	Err     error    // context.Canceled or context.DeadlineExceeded
	Output  string   // what the command printed, if anything
	Console []string // the machine's last console lines
}

func (e *StoppedError) Error() string {
	return withTails(fmt.Sprintf("%s: %s: stopped: %v", e.Machine, e.What, e.Cause), e.Output, e.Console)
}

func (e *StoppedError) Unwrap() []error { return []error{e.Cause, e.Err} }

// DownError says the machine stopped (QEMU exited, the guest panicked or the
// agent died) while something needed it.
type DownError struct {
	Machine string
	What    string // what was being done
	// Reason is what the console says went wrong: `kernel panic "..."`, a
	// kernel oops, an OOM kill, a CPU reset (a triple fault); "" when it
	// says nothing.
	Reason  string
	Cause   error
	Console []string
}

func (e *DownError) Error() string {
	head := fmt.Sprintf("%s: %s: machine is down: ", e.Machine, e.What)
	if e.Reason != "" {
		head += e.Reason + "; "
	}
	return withTails(head+fmt.Sprint(e.Cause), "", e.Console)
}

func (e *DownError) Unwrap() error { return e.Cause }

// withTails is an error's first line followed by the output and the console
// lines that explain it, each as a section when there is any.
func withTails(head, output string, console []string) string {
	var b strings.Builder
	b.WriteString(head)
	section(&b, "last output", output)
	section(&b, "last console lines", strings.Join(console, "\n"))
	return b.String()
}

func section(b *strings.Builder, name, text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	const limit = 4000
	if len(text) > limit {
		text = "..." + text[len(text)-limit:]
	}
	fmt.Fprintf(b, "\n--- %s ---\n%s", name, text)
}
