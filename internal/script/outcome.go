package script

import (
	"errors"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// outcome fills in how a Command event's call ended, from its error: an
// exit status when the command returned one (status holds it), and
// otherwise what happened instead, so that no report says "exit 0" of a
// wait that timed out or a command whose machine died.
func outcome(ev *report.Event, exited bool, status int, err error) {
	var (
		timeout *machine.TimeoutError
		down    *machine.DownError
		stopped *machine.StoppedError
		exit    *machine.ExitError
	)
	switch {
	case errors.As(err, &timeout):
		ev.Outcome, ev.Timeout = report.TimedOut, timeout.Timeout
	case errors.As(err, &down):
		ev.Outcome = report.MachineDown
	case errors.As(err, &stopped):
		ev.Outcome = report.Interrupted
	case errors.As(err, &exit):
		ev.Outcome, ev.Exit = report.Exited, exit.Status
	case exited:
		ev.Outcome, ev.Exit = report.Exited, status
	case err != nil:
		ev.Outcome = report.Errored
	default:
		ev.Outcome = report.Done
	}
}
