package machine

import (
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestQEMUConfigCoverage: a machine collecting coverage shares its raw
// directory writable (QEMU's side) and mounts it directly, under no
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
		if share.HostPath != "/cov/raw/f.test/m" || share.ReadOnly || share.Tag != mount.Tag ||
			mount.Path != agentproto.CoverageGuestDir || mount.Overlay || mount.Cache != "" || bc.Coverage != agentproto.CoverageGuestDir {
			t.Errorf("%s: got share %+v, mount %+v, boot config's coverage %q; want the raw directory writable at %s", fs, share, mount, bc.Coverage, agentproto.CoverageGuestDir)
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
