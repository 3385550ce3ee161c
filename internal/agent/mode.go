package agent

import "os"

// unitEnv marks the agent that systemd started as vmlab-agent.service in a
// guest whose init is systemd (BootConfig.Init): the agent that was PID 1
// built the root, handed PID 1 to systemd, and this one serves the host.
const unitEnv = "VMLAB_AGENT_UNIT"

// unitMode reports whether this process is the agent run as a systemd unit.
func unitMode() bool { return os.Getenv(unitEnv) == "1" }
