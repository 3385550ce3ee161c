package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// ownTest names the .star examples a test of their own runs (and checks
// further), which TestStarExamples leaves to it.
var ownTest = map[string]string{"nfs.star": "TestNFS", "console.star": "TestConsole", "x_terminal.star": "TestXTerminal",
	"coverage.star": "TestCoverage", "image.star": "TestImage", "mixed.star": "TestMixed",
	"tty_prompt.star": "TestTTYPrompt"}

// TestStarExamples runs every .star example with `vmlab run`, as a user
// would, but those in ownTest.
func TestStarExamples(t *testing.T) {
	bootsVMs(t)
	files, err := filepath.Glob("*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .star examples: %v", err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return ownTest[f] != "" })
	if out, err := vmlabRun(t, t.TempDir(), files...); err != nil {
		t.Errorf("vmlab run %v: %v\n%s", files, err, out)
	}
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
	buildOut  []byte
)

// TestMain removes the vmlab that vmlabRun built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built != "" {
		os.RemoveAll(filepath.Dir(built))
	}
	os.Exit(code)
}

// vmlabRun runs `vmlab run -cache=off -j 1 -out OUT ARGS...` (flags, then files;
// -cache=off: each test boots its VMs, as the test wants)
// with a static vmlab built from this module (static, so it is also the
// guest's agent), once per test binary, and returns its output.
func vmlabRun(t *testing.T, out string, args ...string) ([]byte, error) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmlab-examples-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "vmlab")
		build := exec.Command("go", "build", "-o", built, "github.com/vmlab/vmlab/cmd/vmlab")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = build.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build vmlab: %v\n%s", buildErr, buildOut)
	}
	run := exec.Command(built, append([]string{"run", "-cache=off", "-j", "1", "-out", out}, args...)...)
	run.Env = append(os.Environ(), "VMLAB_AGENT=")
	return run.CombinedOutput()
}
