package control

import (
	"time"

	"github.com/vmlab/vmlab/internal/machine"
)

// LabInfo is what a lab's owner says about it when it starts serving.
type LabInfo struct {
	Name    string    `json:"name"`    // the lab's name (its socket's)
	File    string    `json:"file"`    // the test file it was made from, absolute
	Pid     int       `json:"pid"`     // the serving vmlab's process
	Started time.Time `json:"started"` // when it started serving
	// Command is the vmlab command that serves the lab: "up", "run" (a
	// running test's machines) or "repl" (a REPL's, also vmlab run -i's).
	// Only an "up" lab stops on a down request.
	Command string `json:"command,omitempty"`
}

// LabStatus is the answer to "status".
type LabStatus struct {
	LabInfo
	Machines []MachineStatus `json:"machines"`
}

// MachineStatus is one machine in a status answer.
type MachineStatus struct {
	Name  string         `json:"name"`
	State machine.Status `json:"state"` // down, booting, up, failed
	// Error says why a failed machine went down.
	Error      string      `json:"error,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	Forwards   []Forward   `json:"forwards,omitempty"`
	// VNC is the unix socket serving the machine's display while it runs
	// under -screen vnc (docs/screens.md); empty otherwise.
	VNC string `json:"vnc,omitempty"`
}

// Forward is a host port (on 127.0.0.1) forwarded to a guest port.
type Forward struct {
	HostPort  int `json:"host_port"`
	GuestPort int `json:"guest_port"`
}

// Interface is one of a machine's network cards.
type Interface struct {
	VLAN  int      `json:"vlan"`  // 0 for the user-mode NIC (eth0, forwards only)
	Name  string   `json:"name"`  // eth0, eth1, ...
	Addrs []string `json:"addrs"` // with prefix length: "192.168.1.1/24"
}
