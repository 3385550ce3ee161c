package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestStarExamples runs every .star example with `vmlab run`, as a user
// would: a static vmlab built from this module (static, so it is also the
// guest's agent).
func TestStarExamples(t *testing.T) {
	bootsVMs(t)
	files, err := filepath.Glob("*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .star examples: %v", err)
	}
	vmlab := filepath.Join(t.TempDir(), "vmlab")
	build := exec.Command("go", "build", "-o", vmlab, "github.com/vmlab/vmlab/cmd/vmlab")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vmlab: %v\n%s", err, out)
	}
	run := exec.Command(vmlab, append([]string{"run", "-j", "1", "-out", t.TempDir()}, files...)...)
	run.Env = append(os.Environ(), "VMLAB_AGENT=")
	if out, err := run.CombinedOutput(); err != nil {
		t.Errorf("vmlab run %v: %v\n%s", files, err, out)
	}
}
