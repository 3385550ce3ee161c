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
	server.Succeed(t, "python3 -m http.server 8000 >/dev/null 2>&1 &")
	server.WaitForOpenPort(t, 8000)
	if out := server.Succeed(t, "python3 -c 'import urllib.request as u; print(u.urlopen(\"http://localhost:8000/\").status)'"); out != "200\n" {
		t.Errorf("got %q, want %q", out, "200\n")
	}
	if status, out := server.Execute(t, "hostname; exit 2"); status != 2 || strings.TrimSpace(out) != "server" {
		t.Errorf("got %d %q, want 2 %q", status, out, "server")
	}
	server.Fail(t, "test -e /root/.ssh", vmlab.User("root"))
}
