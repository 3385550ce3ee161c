package examples

import (
	"testing"

	"github.com/vmlab/vmlab"
)

// bootsVMs skips a test under -short, which runs the VM-free tests only.
func bootsVMs(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs (-short runs the VM-free tests only)")
	}
}

// TestClientServer is the classic two-machine test: an HTTP server, a client
// that fetches from it by name, and a cut cable.
func TestClientServer(t *testing.T) {
	bootsVMs(t)
	lab := vmlab.New(t)
	server := lab.Machine("server")
	client := lab.Machine("client")

	server.Succeed(t, "mkdir -p /srv/www && echo 'hello from server' > /srv/www/index.html")
	server.Succeed(t, "busybox httpd -p 80 -h /srv/www")
	server.WaitForOpenPort(t, 80, 0)

	if got := client.Succeed(t, "curl -sf http://server/"); got != "hello from server\n" {
		t.Errorf("client fetched %q", got)
	}

	server.Block(t)
	client.Fail(t, "curl -sf --max-time 2 http://server/")
	server.Unblock(t)
	client.WaitUntilSucceeds(t, "curl -sf --max-time 2 http://server/", 0)
}
