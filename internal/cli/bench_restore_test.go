package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchRestore runs the snapshot section of `vmlab bench`: the
// restores are restores (a cold boot is an error there) and the figures
// are filled in.
func TestBenchRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	var stderr bytes.Buffer
	e := &env{stdout: &stderr, stderr: &stderr}
	bf := bootFlags{memory: 512, cpus: 1}
	bf.opts.Accel = vmtest.Boot(t).Accel.Name
	bf.opts.CacheDir = t.TempDir()
	var r restoreBench
	if err := r.benchRestore(t.Context(), e, bf, 3, 2.0); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var out strings.Builder
	r.print(&out)
	t.Logf("%+v\n%s", r, out.String())
	if r.RestoreS <= 0 || r.RestorePSSMiB <= 0 || r.ColdPSSMiB <= 0 {
		t.Errorf("figures missing: %+v", r)
	}
	// The bench's snapshot was its own: none is left in the cache.
	if left, err := machine.ListSnapshots(machine.SnapshotDir(bf.opts.CacheDir)); err != nil || len(left) != 0 {
		t.Errorf("the bench left snapshots in the cache: %+v, %v", left, err)
	}
}
