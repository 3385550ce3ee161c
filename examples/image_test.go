package examples

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestImageKeepState: an image machine's disk, the writable layer over
// its image, is kept across runs by vmlab run -state as a host-root
// machine's is: the second run finds what the first wrote over the image.
func TestImageKeepState(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("no mmdebstrap to build the image")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "keep.star")
	src := `deb = machine(image = "debian:bookworm", packages = ["iproute2", "iputils-ping"])
def test():
    print("found: " + deb.succeed("cat /etc/kept /root/kept 2>/dev/null | tr '\\n' ' ' || true"))
    deb.succeed("echo kept > /etc/kept && echo home > /root/kept")
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	for _, want := range []string{"found: \n", "found: kept home \n"} {
		out, err := vmlabRun(t, t.TempDir(), "-keep-state", state, file)
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("vmlab run -state: %v; want %q in\n%s", err, want, out)
		}
	}
}
