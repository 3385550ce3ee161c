package machine

import (
	"os"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

// TestImageMachineHasNoHostView: an image machine shares nothing of the
// host's root, so no host view (host keys, shadow files) is prepared for
// it; a host-root machine run as root gets one.
func TestImageMachineHasNoHostView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the host view is prepared only as root")
	}
	img := &Machine{cfg: Config{Machine: spec.Machine{Name: "m"}, RootImage: &RootImage{Name: "debian:bookworm", Path: "/x.erofs", FSType: "erofs"}}, dir: t.TempDir()}
	if v, err := img.hostView(); v != nil || err != nil {
		t.Errorf("image machine: hostView = %v, %v; want none", v, err)
	}
	if _, err := os.Stat(img.hostViewDir()); !os.IsNotExist(err) {
		t.Errorf("image machine: host view directory %s: %v; want it not made", img.hostViewDir(), err)
	}
	host := &Machine{cfg: Config{Machine: spec.Machine{Name: "m"}}, dir: t.TempDir()}
	v, err := host.hostView()
	if err != nil || v == nil {
		t.Fatalf("host-root machine: hostView = %v, %v; want a view", v, err)
	}
	v.Wait()
}
