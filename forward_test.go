package vmlab_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/vmlab/vmlab"
)

// TestForwardDeclared declares a forward to a guest's web server: the host
// reaches it with net/http from the first boot, and again after Reboot,
// which boots a new QEMU that must apply the forward again.
func TestForwardDeclared(t *testing.T) {
	bootsVMs(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	web := vmlab.New(t).Machine("web", vmlab.VLANs(), vmlab.Forward(port, 80),
		vmlab.File("/srv/www/index.html", "declared\n", 0),
		vmlab.Services(map[string]vmlab.Service{
			"web": {Command: "busybox httpd -f -p 80 -h /srv/www", ReadyPort: 80},
		}))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for _, boot := range []string{"first boot", "after a reboot"} {
		if boot != "first boot" {
			web.Reboot(t)
		}
		web.WaitForUnit(t, "web", 0)
		if got := httpGet(t, url); got != "declared\n" {
			t.Errorf("%s: through host port %d: got %q, want %q", boot, port, got, "declared\n")
		}
	}
}
