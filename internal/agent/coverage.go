package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// coverageAt is the guest directory the machine's coverage directory is
// mounted on (BootConfig.Coverage); "": the machine collects none.
var coverageAt string

// coverageEnv is what every process the agent starts gets in its
// environment when the machine collects coverage (BootConfig.Coverage):
// agentproto.CoverageEnv, after the agent's defaults and before the
// request's own Env, so a command or service that sets GOCOVERDIR itself
// keeps its value. Set once, before the agent serves; nil: no coverage.
var coverageEnv []string

// setCoverage sets coverageEnv from the boot config.
func setCoverage(cfg agentproto.BootConfig) {
	coverageAt, coverageEnv = cfg.Coverage, nil
	if cfg.Coverage != "" {
		coverageEnv = agentproto.CoverageEnv(cfg.Coverage)
	}
}

// coverageFile is where a systemd guest's PID-1 agent leaves the guest
// directory coverage is mounted on, for the unit agent: the kernel's
// command line of a machine restored from a snapshot holds no boot
// config (docs/snapshots.md), so the unit agent cannot read it there.
const coverageFile = runDir + "/coverage-at"

// saveCoverage writes coverageAt to coverageFile, for unitCoverage.
func saveCoverage() error {
	if err := os.WriteFile(coverageFile, []byte(coverageAt), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", coverageFile, err)
	}
	return nil
}

// unitCoverage sets coverageEnv in the agent systemd runs, from what the
// PID-1 agent left in coverageFile.
func unitCoverage() {
	b, err := os.ReadFile(coverageFile)
	if err != nil {
		logf("coverage: %v", err)
		return
	}
	setCoverage(agentproto.BootConfig{Coverage: string(b)})
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
		coverageAt, strings.Join(quoted, " "))
	return map[string]string{
		"systemd/system.conf.d/vmlab-coverage.conf": text,
		"systemd/user.conf.d/vmlab-coverage.conf":   text,
	}
}

// signaled reports the signal that ended a process whose Wait returned err.
func signaled(err error) (syscall.Signal, bool) {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return 0, false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}

// killed lists, in the order the services started, the runs of each that
// a signal ended (see service.killed).
func (sv *services) killed() []string {
	sv.mu.Lock()
	list := slices.Clone(sv.order)
	sv.mu.Unlock()
	var notes []string
	for _, s := range list {
		s.mu.Lock()
		notes = append(notes, s.killed...)
		s.mu.Unlock()
	}
	return notes
}

// writeCoverageNotes writes notes to the coverage directory's
// agentproto.CoverageNotes when the machine collects coverage: the host
// reads it after the power-off. It writes nothing when there is nothing
// to say.
func writeCoverageNotes(notes []string) {
	if coverageAt == "" || len(notes) == 0 {
		return
	}
	path := filepath.Join(coverageAt, agentproto.CoverageNotes)
	// Appended: a reboot's power-off wrote the last boot's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err == nil {
		_, err = f.WriteString(strings.Join(notes, "\n") + "\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		logf("coverage: write %s: %v", path, err)
	}
}
