package vmlab_test

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.Main(m) }

func TestLab(t *testing.T) {
	lab := vmlab.New(t)
	server := lab.Machine("server", vmlab.Memory(384),
		vmlab.Packages("busybox-static"),
		vmlab.File("/srv/www/index.html", "hi\n", 0),
		vmlab.Users("alice"),
		vmlab.Sysctl("net.ipv4.ip_forward", "1"),
		vmlab.Services(map[string]vmlab.Service{
			"web": {Command: "busybox httpd -f -p 8000 -h /srv/www", ReadyPort: 8000},
		}))
	server.WaitForUnit(t, "multi-user.target")
	server.WaitForUnit(t, "web.service")
	server.Succeed(t, "id alice && test -d /home/alice")
	if out := server.Succeed(t, "cat /proc/sys/net/ipv4/ip_forward"); out != "1\n" {
		t.Errorf("ip_forward is %q, want the sysctl applied", out)
	}
	if out := server.Succeed(t, "curl -s -o /dev/null -w '%{http_code}' http://localhost:8000/"); out != "200" {
		t.Errorf("got %q, want %q", out, "200")
	}
	if status, out := server.Execute(t, "hostname; exit 2"); status != 2 || strings.TrimSpace(out) != "server" {
		t.Errorf("got %d %q, want 2 %q", status, out, "server")
	}
	server.Fail(t, "test -e /root/.ssh", vmlab.User("root"))
}
