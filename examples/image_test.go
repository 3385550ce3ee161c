package examples

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vmlab/vmlab"
)

// TestImage runs image.star as a user would, and declares the same
// machines through the Go API: a Debian bookworm image machine (built by
// vmlab at the first run, from the cache after) beside a host-root one.
// Both need mmdebstrap and the archive the host's apt uses.
func TestImage(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build the image")
	}
	if out, err := vmlabRun(t, t.TempDir(), "image.star"); err != nil {
		t.Fatalf("vmlab run image.star: %v\n%s", err, out)
	}
	lab := vmlab.New(t)
	deb := lab.Machine("deb", vmlab.Image("debian:bookworm"), vmlab.Packages("iproute2", "iputils-ping"))
	lab.Machine("host")
	lab.StartAll(t)
	if v := deb.Succeed(t, "cat /etc/debian_version"); !strings.HasPrefix(v, "12.") {
		t.Errorf("deb's /etc/debian_version: got %q, want bookworm's 12.x", v)
	}
	deb.Succeed(t, "ping -c 1 -W 5 host")
}
