package examples

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/cli"
)

// TestStarExamples runs every .star example through `vmlab run`, as a user
// would.
func TestStarExamples(t *testing.T) {
	bootsVMs(t)
	files, err := filepath.Glob("*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .star examples: %v", err)
	}
	var stdout, stderr bytes.Buffer
	args := append([]string{"run", "-j", "1", "-out", t.TempDir()}, files...)
	if code := cli.Main(args, &stdout, &stderr); code != 0 {
		t.Errorf("vmlab run %v: exit %d\n%s\n%s", files, code, stdout.String(), stderr.String())
	}
}
