package machine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSystemdAgentKilled kills the agent of a systemd machine in the middle
// of a command: the machine powers off and the call fails as a machine
// that went down. Before, systemd restarted the agent, whose second hello
// broke the channel with a protocol error.
func TestSystemdAgentKilled(t *testing.T) {
	needsSystemd(t)
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysd", Init: spec.InitSystemd}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := m.Execute(ctx, "kill -KILL $(systemctl show -P MainPID vmlab-agent.service); sleep 600")
	t.Logf("error: %v", err)
	var down *machine.DownError
	if !errors.As(err, &down) || errors.Is(err, agentproto.ErrMalformed) {
		t.Fatalf("got %v, want the machine down and no protocol error", err)
	}
	// The console log (the report's) says why, and systemd read every
	// setting of the agent's unit.
	said := false
	for _, l := range m.ConsoleLog() {
		said = said || strings.Contains(l, "vmlab-agent.service: Main process exited, code=killed, status=9/KILL")
		if strings.Contains(l, "vmlab-agent.service") && strings.Contains(l, "Unknown key") {
			t.Errorf("console: %s", l)
		}
	}
	if !said {
		t.Errorf("the console log does not say the agent was killed:\n%s", strings.Join(m.ConsoleLog(), "\n"))
	}
}
