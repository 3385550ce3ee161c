package machine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// Service exits: a fast-mode machine's agent supervises its declared
// services and tells the host, unasked, when one exits (agentproto.Notice).
// The machine keeps the last exit of each service for the current boot,
// so that a wait that times out can say which ones died (the usual
// reason), and tells Config.OnServiceExit at once, for the run's
// timeline. A wait does not fail early on an exit: a service may be
// restarted, and NixOS waits do not either; only WaitForUnit of that
// service fails at once.

// onNotice is the agent client's notice hook for this machine. It runs on
// the client's reading goroutine: it records and hands on, never blocks.
func (m *Machine) onNotice(n agentproto.Notice) {
	e := n.ServiceExit
	if e == nil {
		return
	}
	m.mu.Lock()
	i := slices.IndexFunc(m.serviceExits, func(x agentproto.ServiceExit) bool { return x.Name == e.Name })
	if i >= 0 {
		m.serviceExits = slices.Delete(m.serviceExits, i, i+1)
	}
	m.serviceExits = append(m.serviceExits, *e)
	m.mu.Unlock()
	if m.cfg.OnServiceExit != nil {
		m.cfg.OnServiceExit(*e)
	} else {
		m.logf("%v", e)
	}
}

// ServiceExits returns, for each declared service that exited since the
// machine last booted, how its last run ended, in the order they ended.
func (m *Machine) ServiceExits() []agentproto.ServiceExit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.serviceExits)
}

// exitedServices is the section a timed-out wait's error adds: one line
// per service that exited since boot, then its last lines that say
// something, indented.
func (m *Machine) exitedServices() string {
	var b strings.Builder
	for _, e := range m.ServiceExits() {
		b.WriteString(e.String())
		b.WriteByte('\n')
		for _, l := range agentproto.TellingLines(e.Tail, exitLines) {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// exitLines is how many of an exited service's last lines a timeout's
// error shows; the console tail below it often has more.
const exitLines = 5

// A systemd machine's services are units, and its agent is not their
// supervisor: at a wait's timeout the machine asks systemd which of the
// declared units (spec.Machine.DeclaredUnits, and Enable's) have failed,
// one systemctl call. No notice comes as a unit fails, so the timeline
// has it only through the journal on the console.

// unitProps are the properties failedUnits reads.
const unitProps = "Id,ActiveState,Result,ExecMainCode,ExecMainStatus"

// servicesAtTimeout is the section a timed-out wait's error adds: in fast
// mode the services that exited, on a systemd machine the declared units
// that failed.
func (m *Machine) servicesAtTimeout(ctx context.Context) string {
	if !m.cfg.Systemd() {
		return m.exitedServices()
	}
	units := m.cfg.DeclaredUnits()
	for _, name := range m.cfg.Enable {
		units = append(units, agentproto.UnitName(name))
	}
	if len(units) == 0 {
		return ""
	}
	m.mu.Lock()
	agent := m.agent
	m.mu.Unlock()
	if agent == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, m.scale(2*time.Second))
	defer cancel()
	var out strings.Builder
	argv := append([]string{"systemctl", "show", "--property=" + unitProps, "--"}, units...)
	res, err := agent.Exec(ctx, agentproto.Exec{Argv: argv, Timeout: m.scale(time.Second)},
		agentclient.ExecIO{Stdout: &out})
	if err != nil || res.Exit != 0 {
		return ""
	}
	return failedUnits(out.String())
}

// failedUnits reads systemctl show's blocks of unitProps, one per unit
// separated by a blank line, and says which units failed and how, one a
// line: "unit x.service failed (exit-code): its main process exited with
// status 1".
func failedUnits(show string) string {
	var b strings.Builder
	for _, block := range strings.Split(strings.TrimSpace(show), "\n\n") {
		p := map[string]string{}
		for _, l := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				p[k] = v
			}
		}
		if p["ActiveState"] != "failed" {
			continue
		}
		fmt.Fprintf(&b, "unit %s failed (%s)", p["Id"], p["Result"])
		// ExecMainCode is the main process's si_code: CLD_EXITED (1),
		// CLD_KILLED (2), CLD_DUMPED (3); 0 when none ran.
		switch p["ExecMainCode"] {
		case "1":
			fmt.Fprintf(&b, ": its main process exited with status %s", p["ExecMainStatus"])
		case "2", "3":
			fmt.Fprintf(&b, ": its main process was killed by signal %s", p["ExecMainStatus"])
		}
		b.WriteByte('\n')
	}
	return b.String()
}
