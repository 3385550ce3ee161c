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
	"golang.org/x/sys/unix"
)

// Coverage is where a machine's coverage data goes when the run collects it
// (vmlab run -coverage, docs/coverage.md). The zero Coverage collects none.
//
// From the first boot on, Dir/guest (coverage.GuestDir) is shared with
// the guest, writable and under no overlay, at
// agentproto.CoverageGuestDir, and every process the guest starts
// (commands, shells, services, units) runs with agentproto.CoverageEnv: a
// binary built with go build -cover writes its counters to Dir/guest/go
// when it exits normally, one built with gcc --coverage its .gcda files
// under Dir/guest/gcov when it calls exit. Close shuts the machine down
// cleanly first, so the services get their stop timeout to write theirs,
// and writes Dir/state.json, beside the share, never in it: the data is
// partial when the machine crashed, went down or powered itself off, was
// not shut down cleanly, or a command or (fast mode, as its agent notes)
// a service of it was killed by a signal; it is excluded when the share
// holds what is not coverage data (coverage.CheckShare).
//
// The guest's root may put anything in the share: the host never writes
// through it, reads the agent's notes from it without following a link,
// and refuses to boot a machine whose go/ or gcov/ is no longer a
// directory.
type Coverage struct {
	Dir  string // the machine's raw directory: coverage.MachineDir(dir, Test, name)
	Test string // the test's name in state.json
}

// Modes of the raw directories. The share's root (GuestDir) is seen by
// the guest: a service's user must get through it to go/ and gcov/,
// which anyone in the guest may write (sticky, as /tmp). The machine's
// raw directory and the coverage directory above stay private to the
// host's user.
const (
	coverageDirMode  = 0o755
	coverageDataMode = 0o777 | unix.S_ISVTX
)

// prepareCoverage creates the machine's raw directory, its share and the
// share's go/ and gcov/ before a boot shares them. From the second boot
// on, the guest had them: each is opened without following a link and
// must be a directory, and its mode is set on what was opened.
func (m *Machine) prepareCoverage() error {
	dir := m.cfg.Coverage.Dir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the coverage directory %s: %w", dir, err)
	}
	share := filepath.Join(dir, coverage.GuestDir)
	if err := m.coverageSubdir(share, coverageDirMode); err != nil {
		return err
	}
	for _, sub := range []string{coverage.GoDir, coverage.GcovDir} {
		if err := m.coverageSubdir(filepath.Join(share, sub), coverageDataMode); err != nil {
			return err
		}
	}
	return nil
}

// coverageSubdir makes the directory p when missing and sets its mode
// through a descriptor opened without following a link (a guest may have
// replaced it with one to a host directory).
func (m *Machine) coverageSubdir(p string, mode uint32) error {
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: create the coverage directory %s: %w", m.cfg.Name, p, err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s: the coverage directory %s is no longer a directory (the guest replaced it, a symbolic link or a file): not shared again; remove it, or collect into a new directory", m.cfg.Name, p)
	}
	if err != nil {
		return fmt.Errorf("%s: open the coverage directory %s: %w", m.cfg.Name, p, err)
	}
	defer unix.Close(fd)
	// Fchmod, not Mkdir's mode: the umask would take the bits away.
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("%s: set the mode of the coverage directory %s: %w", m.cfg.Name, p, err)
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
	return append(shares, qemu.Share{Tag: tag, HostPath: filepath.Join(dir, coverage.GuestDir)})
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

// maxCoverageNotes caps the agent's notes: a line per service a signal
// ended.
const maxCoverageNotes = 64 << 10

// takeCoverageNotes reads and removes the notes a fast-mode agent left at
// its last clean power-off (agentproto.CoverageNotes): the services a
// signal ended. The file is vmlab's, not the user's data. It is in the
// share, so a guest may have made it anything: a file that is not a
// regular one of at most maxCoverageNotes bytes is not read, and the
// data is partial for it (the notes are lost).
func (m *Machine) takeCoverageNotes() ([]string, error) {
	path := filepath.Join(m.cfg.Coverage.Dir, coverage.GuestDir, agentproto.CoverageNotes)
	b, err := coverage.ReadNoFollow(path, maxCoverageNotes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if rmErr := os.RemoveAll(path); rmErr != nil {
		return nil, fmt.Errorf("%s: remove the agent's coverage notes: %w", m.cfg.Name, rmErr)
	}
	if err != nil {
		return []string{fmt.Sprintf("the agent's coverage notes were not read: %v", err)}, nil
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
	for _, s := range m.cfg.Services {
		st.Services = append(st.Services, s.Name)
	}
	why, err := coverage.CheckShare(c.Dir, coverage.MaxShareBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", m.cfg.Name, err)
	}
	if why != "" {
		st.Excluded = why
		st.Reasons = append(st.Reasons, "not merged: "+why)
	}
	st.Partial = len(st.Reasons) > 0
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	// Beside the share, in a directory the guest cannot write; no link
	// is followed all the same.
	path := filepath.Join(c.Dir, coverage.StateFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("%s: write the coverage state: %w", m.cfg.Name, err)
	}
	return nil
}
