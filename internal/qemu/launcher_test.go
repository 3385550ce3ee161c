package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/hostview"
)

// TestLauncherView starts processes from a launcher with a host view: they
// read the view's files where the host's are, and the driver still reads
// the host's.
func TestLauncherView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the view is mounted in a mount namespace of its own")
	}
	dir := t.TempDir()
	host, generated := filepath.Join(dir, "shadow"), filepath.Join(dir, "generated")
	os.WriteFile(host, []byte("root:$6$salt$HOSTHASH:1:::::\n"), 0o640)
	os.WriteFile(generated, []byte("root:*:::::::\n"), 0o640)
	view := &hostview.View{Binds: []hostview.Bind{{Source: generated, Target: host}}}

	l, err := startLauncher(namespaceSetup(Config{View: view}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	var out []byte
	l.do(func() { out, err = exec.Command("cat", host).Output() })
	if got, want := string(out), "root:*:::::::\n"; err != nil || got != want {
		t.Errorf("a process from the launcher read %q (%v), want %q", got, err, want)
	}
	if b, _ := os.ReadFile(host); !strings.Contains(string(b), "HOSTHASH") {
		t.Errorf("the driver read %q, want the host's file: the bind leaked", b)
	}

}

func TestNamespaceSetup(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"9p without a view", Config{Shares: []Share{{HostPath: "/usr", ReadOnly: true}}}, false},
		{"9p with a view", Config{View: &hostview.View{}}, true},
		{"virtiofs shares", Config{FS: "virtiofs", Shares: []Share{{HostPath: "/usr", ReadOnly: true}}}, true},
		{"virtiofs without shares", Config{FS: "virtiofs"}, false},
	}
	for _, tt := range tests {
		if got := namespaceSetup(tt.cfg) != nil; got != tt.want {
			t.Errorf("%s: namespace %v, want %v", tt.name, got, tt.want)
		}
	}
}
