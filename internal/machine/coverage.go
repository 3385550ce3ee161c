package machine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/qemu"
)

// Coverage is where a machine's coverage data goes when the run collects it
// (vmlab run -coverage, docs/coverage.md). The zero Coverage collects none.
//
// From the first boot on, Dir is shared with the guest, writable and under
// no overlay, at agentproto.CoverageGuestDir, and every process the guest
// starts (commands, shells, services, units) runs with
// agentproto.CoverageEnv: a binary built with go build -cover writes its
// counters to Dir/go when it exits normally, one built with gcc --coverage
// its .gcda files under Dir/gcov when it calls exit. Close shuts the
// machine down cleanly first, so the services get their stop timeout to
// write theirs, and writes Dir/state.json: the data is partial when the
// machine crashed, went down or powered itself off, was not shut down
// cleanly, or a command or (fast mode, as its agent notes) a service of it
// was killed by a signal.
type Coverage struct {
	Dir  string // the machine's raw directory: coverage.MachineDir(dir, Test, name)
	Test string // the test's name in state.json
}

// Modes of the raw directories. Dir is the share's root, so the guest
// sees its mode: a service's user must get through it to go/ and gcov/,
// which anyone in the guest may write (sticky, as /tmp). The coverage
// directory above it stays private to the host's user.
const (
	coverageDirMode  = 0o755
	coverageDataMode = 0o777 | fs.ModeSticky
)

// prepareCoverage creates the machine's raw directory and its go/ and gcov/
// before a boot shares them.
func (m *Machine) prepareCoverage() error {
	dir := m.cfg.Coverage.Dir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the coverage directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, coverageDirMode); err != nil {
		return fmt.Errorf("create the coverage directory %s: %w", dir, err)
	}
	for _, sub := range []string{coverage.GoDir, coverage.GcovDir} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create the coverage directory %s: %w", p, err)
		}
		// Chmod, not MkdirAll's mode: the umask would take the bits away.
		if err := os.Chmod(p, coverageDataMode); err != nil {
			return fmt.Errorf("create the coverage directory %s: %w", p, err)
		}
	}
	return nil
}

// coverageShare adds the coverage directory to the guest's shares and boot
// config: mounted directly, not under an overlay, so what the guest writes
// there reaches the host as it writes it (9p without a cache, virtiofs with
// virtiofsd's default), and a crash loses only what a process had not
// written yet.
func (m *Machine) coverageShare(shares []qemu.Share, boot *agentproto.BootConfig) []qemu.Share {
	dir := m.cfg.Coverage.Dir
	if dir == "" {
		return shares
	}
	tag := fmt.Sprintf("vmlab%d", len(shares))
	boot.Mounts = append(boot.Mounts, agentproto.Mount{Tag: tag, Path: agentproto.CoverageGuestDir})
	boot.Coverage = agentproto.CoverageGuestDir
	return append(shares, qemu.Share{Tag: tag, HostPath: filepath.Clean(dir)})
}

// partial records why the machine's coverage data may miss counts; a
// machine that collects none records nothing.
func (m *Machine) partial(format string, args ...any) {
	if m.cfg.Coverage.Dir == "" {
		return
	}
	m.mu.Lock()
	m.partialReasons = append(m.partialReasons, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

// noteKilled records a command that a signal ended: it wrote no counters.
func (m *Machine) noteKilled(what string, res agentproto.Result) {
	switch {
	case res.SignalNumber > 0:
		m.partial("%s was killed by signal %d (%s)", what, res.SignalNumber, res.Signal)
	case res.Signal != "":
		m.partial("%s was killed (%s)", what, res.Signal)
	}
}

// takeCoverageNotes reads and removes the notes a fast-mode agent left at
// its last clean power-off (agentproto.CoverageNotes): the services a
// signal ended. The file is vmlab's, not the user's data.
func (m *Machine) takeCoverageNotes() ([]string, error) {
	path := filepath.Join(m.cfg.Coverage.Dir, agentproto.CoverageNotes)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read the agent's coverage notes: %w", m.cfg.Name, err)
	}
	var notes []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			notes = append(notes, l)
		}
	}
	return notes, nil
}

// writeCoverageState writes state.json into the raw directory of a machine
// that booted at least once (its directory exists).
func (m *Machine) writeCoverageState() error {
	c := m.cfg.Coverage
	if c.Dir == "" {
		return nil
	}
	if _, err := os.Stat(c.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	notes, err := m.takeCoverageNotes()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.partialReasons = append(m.partialReasons, notes...) // for a second Close
	st := coverage.State{Test: c.Test, Machine: m.cfg.Name, Reasons: slices.Clone(m.partialReasons)}
	m.mu.Unlock()
	st.Partial = len(st.Reasons) > 0
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(c.Dir, coverage.StateFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%s: write the coverage state: %w", m.cfg.Name, err)
	}
	return nil
}
