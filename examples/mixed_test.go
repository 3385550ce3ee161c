package examples

import (
	"os/exec"
	"regexp"
	"testing"
)

// TestMixed runs mixed.star: a redis replica on a trixie image follows a
// primary on a bookworm image, and the two run different redis versions.
// It needs mmdebstrap and the archive the host's apt uses (the first run
// builds both images).
func TestMixed(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build the images")
	}
	out, err := vmlabRun(t, t.TempDir(), "mixed.star")
	if err != nil {
		t.Fatalf("vmlab run mixed.star: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`primary: Redis server v=7\.`).Match(out) {
		t.Errorf("want bookworm's redis 7 on the primary in\n%s", out)
	}
}
