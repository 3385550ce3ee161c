package machine

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestQEMUConfigCoverage: a machine collecting coverage shares its raw
// directory's guest/ writable (QEMU's side), never the raw directory
// itself (state.json is there) and mounts it directly, under no
// overlay, at CoverageGuestDir, which the boot config names; over 9p and
// virtiofs alike. One that collects none shares nothing more.
func TestQEMUConfigCoverage(t *testing.T) {
	for _, fs := range []string{"9p", "virtiofs"} {
		boot := &Boot{Kernel: &kernel.Kernel{Vmlinux: "/k"}, FS: fs}
		plain := &Machine{cfg: Config{Machine: spec.Machine{Name: "m"}, Boot: boot}, dir: t.TempDir()}
		base := plain.qemuConfig(nil, "", "/i")
		m := &Machine{cfg: Config{Machine: spec.Machine{Name: "m"}, Boot: boot,
			Coverage: Coverage{Dir: "/cov/raw/f.test/m", Test: "f.test"}}, dir: t.TempDir()}
		cfg := m.qemuConfig(nil, "", "/i")
		bc, err := agentproto.ParseBootConfig(cfg.Append)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Shares) != len(base.Shares)+1 {
			t.Fatalf("%s: got %d shares, want %d", fs, len(cfg.Shares), len(base.Shares)+1)
		}
		share, mount := cfg.Shares[len(cfg.Shares)-1], bc.Mounts[len(bc.Mounts)-1]
		if share.HostPath != "/cov/raw/f.test/m/guest" || share.ReadOnly || share.Tag != mount.Tag ||
			mount.Path != agentproto.CoverageGuestDir || mount.Overlay || mount.Cache != "" || bc.Coverage != agentproto.CoverageGuestDir {
			t.Errorf("%s: got share %+v, mount %+v, boot config's coverage %q; want the raw directory's guest/ writable at %s", fs, share, mount, bc.Coverage, agentproto.CoverageGuestDir)
		}
		if pbc, _ := agentproto.ParseBootConfig(base.Append); pbc.Coverage != "" {
			t.Errorf("%s: a machine without coverage has %q", fs, pbc.Coverage)
		}
	}
	// The guest's environment names the layout's directories.
	env := agentproto.CoverageEnv("/c")
	if env[0] != "GOCOVERDIR=/c/"+coverage.GoDir || env[1] != "GCOV_PREFIX=/c/"+coverage.GcovDir {
		t.Errorf("CoverageEnv: got %q, want the layout's %s and %s", env, coverage.GoDir, coverage.GcovDir)
	}
}

// TestCoverageShareLinks: what a guest's root can plant in its share,
// symbolic links to host files in place of the agent's notes and of go/,
// reaches no host file: the notes are not read through the link (the
// data is partial for it, and excluded: the share holds a link), and a
// later boot refuses a go/ that is no longer a directory instead of
// changing the mode of the directory it points to. state.json is beside
// the share, where the guest cannot plant anything.
func TestCoverageShareLinks(t *testing.T) {
	dir, host := t.TempDir(), t.TempDir()
	secret := filepath.Join(host, "id_rsa")
	victim := filepath.Join(host, "victim")
	os.WriteFile(secret, []byte("HOSTSECRET"), 0o600)
	os.Mkdir(victim, 0o700)
	m := &Machine{cfg: Config{Machine: spec.Machine{Name: "m"}, Coverage: Coverage{Dir: dir, Test: "f.t"}}}
	if err := m.prepareCoverage(); err != nil { // the first boot
		t.Fatal(err)
	}
	share := filepath.Join(dir, coverage.GuestDir)
	// The guest's root, through the share.
	if err := os.Symlink(secret, filepath.Join(share, agentproto.CoverageNotes)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(share, coverage.GoDir))
	if err := os.Symlink(victim, filepath.Join(share, coverage.GoDir)); err != nil {
		t.Fatal(err)
	}
	err := m.prepareCoverage() // a second boot
	if err == nil || !strings.Contains(err.Error(), "m: the coverage directory "+filepath.Join(share, coverage.GoDir)+" is no longer a directory") {
		t.Errorf("a second boot with go/ a link: got %v, want an error naming the machine and go/", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o700 || fi.Mode()&fs.ModeSticky != 0 {
		t.Errorf("the host directory behind the link has mode %v, want 0700 as it was", fi.Mode())
	}
	st, b := writeState(t, m, dir)
	if strings.Contains(string(b), "HOSTSECRET") {
		t.Errorf("the state holds the host file behind the notes' link: %s", b)
	}
	if !st.Partial || !strings.Contains(string(b), "the agent's coverage notes were not read") || !strings.Contains(st.Excluded, "not a regular file or directory") {
		t.Errorf("got state %s, want it partial (notes not read) and excluded (a link in the share)", b)
	}
	if got, _ := os.ReadFile(secret); string(got) != "HOSTSECRET" {
		t.Errorf("the host file behind the notes' link now holds %q", got)
	}
}

// TestCoverageStateServices: state.json names the machine's services, so
// that a merge finding no data says they were stopped before they wrote
// any, not that the binaries were not built with -cover.
func TestCoverageStateServices(t *testing.T) {
	dir := t.TempDir()
	m := &Machine{cfg: Config{Machine: spec.Machine{Name: "m", Services: []agentproto.Service{{Name: "app", Command: "/opt/app serve"}}},
		Coverage: Coverage{Dir: dir, Test: "f.t"}}}
	if err := m.prepareCoverage(); err != nil {
		t.Fatal(err)
	}
	st, b := writeState(t, m, dir)
	if len(st.Services) != 1 || st.Services[0] != "app" || st.Partial {
		t.Errorf("got state %s, want services [app], not partial", b)
	}
}

// writeState writes m's state.json into dir and returns it, decoded and
// as written.
func writeState(t *testing.T, m *Machine, dir string) (coverage.State, []byte) {
	t.Helper()
	if err := m.writeCoverageState(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, coverage.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st coverage.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st, b
}
