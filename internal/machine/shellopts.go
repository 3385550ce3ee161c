package machine

import (
	"io"
	"os"

	"github.com/vmlab/vmlab/internal/pty"
)

// ShellOptions says what Machine.Shell runs and how its input and output
// travel. The zero value runs an interactive login shell as root with no
// input, its output dropped.
type ShellOptions struct {
	// Command is the argv to run, not through a shell; nil runs User's
	// interactive login shell (bash when the guest has it, else sh).
	Command []string
	// User runs the command as this guest user; "" is root.
	User string
	// Env is added to the command's clean environment (PATH, HOME, USER,
	// LANG, and TERM from the host when TTY is set).
	Env map[string]string
	// TTY runs the command on a new pseudo-terminal in the guest, as its
	// controlling terminal: job control, Ctrl-C and Ctrl-Z work as typed
	// bytes, and stdout and stderr both arrive on Stdout.
	TTY bool
	// Size is the terminal's first window size (TTY only); zero is 24x80.
	Size pty.Size
	// Resize carries later window sizes (TTY only); nil means none.
	Resize <-chan pty.Size
	// Signals carries signals for the command's process group (SIGINT,
	// SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGKILL, SIGUSR1,
	// SIGUSR2, SIGWINCH); nil means none. Without a TTY, this is how the
	// host's Ctrl-C reaches the command.
	Signals <-chan os.Signal
	// Stdin is the command's input; nil is an empty input. EOF on Stdin
	// closes the command's stdin (or sends the terminal's EOF with TTY).
	Stdin io.Reader
	// Stdout and Stderr receive the output as it is written; nil drops it.
	Stdout, Stderr io.Writer
}

// ShellResult is how a Shell command ended.
type ShellResult struct {
	Status int    // its exit status; 128+N when signal N killed it
	Signal string // the signal that killed it ("SIGINT"), else ""
}
