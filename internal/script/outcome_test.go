package script

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// TestOutcome: a Command event says how its call ended, from the machine
// package's typed errors, wrapped or not; an exit status only when the
// command returned one.
func TestOutcome(t *testing.T) {
	tests := []struct {
		name        string
		exited      bool
		status      int
		err         error
		want        report.Outcome
		wantExit    int
		wantTimeout time.Duration
	}{
		{"command exited 0", true, 0, nil, report.Exited, 0, 0},
		{"command exited 3", true, 3, nil, report.Exited, 3, 0},
		{"wait returned", false, 0, nil, report.Done, 0, 0},
		{"wait timed out", false, 0, &machine.TimeoutError{Machine: "vm", What: "unit web", Timeout: 10 * time.Second}, report.TimedOut, 0, 10 * time.Second},
		{"wrapped timeout", false, 0, fmt.Errorf("wait: %w", &machine.TimeoutError{Timeout: time.Second}), report.TimedOut, 0, time.Second},
		{"machine panicked", false, 0, &machine.DownError{Machine: "vm", Cause: errors.New("qemu exited")}, report.MachineDown, 0, 0},
		{"ctrl-c", false, 0, &machine.StoppedError{Machine: "vm", Cause: errors.New("interrupt"), Err: context.Canceled}, report.Interrupted, 0, 0},
		{"wait_until_succeeds' last status", false, 0, &machine.ExitError{Status: 2, WantSuccess: true}, report.Exited, 2, 0},
		{"other error", false, 0, errors.New("no such file"), report.Errored, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev report.Event
			outcome(&ev, tt.exited, tt.status, tt.err)
			if ev.Outcome != tt.want || ev.Exit != tt.wantExit || ev.Timeout != tt.wantTimeout {
				t.Errorf("got outcome %q, exit %d, timeout %v; want %q, %d, %v", ev.Outcome, ev.Exit, ev.Timeout, tt.want, tt.wantExit, tt.wantTimeout)
			}
		})
	}
}
