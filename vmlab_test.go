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
	server := lab.Machine("server", vmlab.Memory(384))
	server.Succeed(t, "mkdir -p /srv/www && echo hi > /srv/www/index.html && busybox httpd -p 8000 -h /srv/www")
	server.WaitForOpenPort(t, 8000)
	if out := server.Succeed(t, "curl -s -o /dev/null -w '%{http_code}' http://localhost:8000/"); out != "200" {
		t.Errorf("got %q, want %q", out, "200")
	}
	if status, out := server.Execute(t, "hostname; exit 2"); status != 2 || strings.TrimSpace(out) != "server" {
		t.Errorf("got %d %q, want 2 %q", status, out, "server")
	}
	server.Fail(t, "test -e /root/.ssh", vmlab.User("root"))
}
