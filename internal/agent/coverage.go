package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// coverageEnv is what every process the agent starts gets in its
// environment when the machine collects coverage (BootConfig.Coverage):
// agentproto.CoverageEnv, after the agent's defaults and before the
// request's own Env, so a command or service that sets GOCOVERDIR itself
// keeps its value. Set once, before the agent serves; nil: no coverage.
var coverageEnv []string

// setCoverage sets coverageEnv from the boot config.
func setCoverage(cfg agentproto.BootConfig) {
	if cfg.Coverage != "" {
		coverageEnv = agentproto.CoverageEnv(cfg.Coverage)
	}
}

// unitCoverage sets coverageEnv in the agent systemd runs, from the kernel
// command line the PID-1 agent read too.
func unitCoverage() {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		logf("coverage: read kernel command line: %v", err)
		return
	}
	cfg, err := agentproto.ParseBootConfig(string(b))
	if err != nil {
		logf("coverage: %v", err)
		return
	}
	setCoverage(cfg)
}

// withCoverage returns env with coverageEnv inserted before extra: the
// process's environment when extra is what its request declares (later
// entries win in os/exec, and in systemd Environment= beats
// DefaultEnvironment=).
func withCoverage(env, extra []string) []string {
	return append(append(env, coverageEnv...), extra...)
}

// coverageSettings are the systemd manager drop-ins that give every unit,
// of the system manager and of users' managers, the coverage environment
// (DefaultEnvironment=; a unit's Environment= wins), by path under /run.
func coverageSettings() map[string]string {
	if len(coverageEnv) == 0 {
		return nil
	}
	quoted := make([]string, len(coverageEnv))
	for i, kv := range coverageEnv {
		quoted[i] = `"` + kv + `"`
	}
	text := fmt.Sprintf("# vmlab run -coverage: the raw coverage directory is mounted at %s.\n[Manager]\nDefaultEnvironment=%s\n",
		filepath.Dir(strings.TrimPrefix(coverageEnv[0], "GOCOVERDIR=")), strings.Join(quoted, " "))
	return map[string]string{
		"systemd/system.conf.d/vmlab-coverage.conf": text,
		"systemd/user.conf.d/vmlab-coverage.conf":   text,
	}
}
