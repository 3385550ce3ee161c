package machine

import (
	"context"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// WaitUnitAsWritten asks the agent to wait for unit, sent as written (a
// systemd machine's WaitForUnit does so), on user's manager when user is
// set, and returns the time the wait took in the guest.
func (m *Machine) WaitUnitAsWritten(ctx context.Context, unit, user string, timeout time.Duration) (time.Duration, error) {
	res, err := m.wait(ctx, "wait for unit "+unit,
		agentproto.Wait{Kind: agentproto.WaitUnit, Path: unit, User: user, Timeout: timeout})
	return res.Elapsed, err
}
