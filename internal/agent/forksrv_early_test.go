package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestForkServerMoveToRoot: the 'S' message moves a running server into
// another root: its commands see that root's files, run in the directory
// given, with $PWD and pwd saying so, and get the variables exported; a
// directory the root lacks is refused with its errno, and the server goes
// on serving where it was.
func TestForkServerMoveToRoot(t *testing.T) {
	f := testForkServer(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "marker"), []byte("the new root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := f.moveToRoot(root, "/missing", nil)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "/missing") {
		t.Errorf("a missing directory: %v, want ENOENT naming it", err)
	}
	// That failure chrooted the server already: what the agent does next
	// is kill it. Another server shows the move itself.
	f = testForkServer(t)
	if err := f.moveToRoot(root, "/work", []string{"PATH=/nowhere", "VMLAB_X=a b"}); err != nil {
		t.Fatal(err)
	}
	if f.dir != "/work" {
		t.Errorf("the server's directory: %q, want /work", f.dir)
	}
	// Nothing of the host is in that root: builtins only.
	out, errOut, res := forkRun(t, f, `read -r m < /marker; echo "$m|$PWD|$(pwd)|$PATH"; declare -p VMLAB_X`, "", 0)
	want := "the new root|/work|/work|/nowhere\ndeclare -x VMLAB_X=\"a b\"\n"
	if out != want || errOut != "" || res.Exit != 0 {
		t.Errorf("a command after the move: %q, %q, %+v; want %q", out, errOut, res, want)
	}
	if out, _, _ := forkRun(t, f, `ls / 2>&1 || echo "no ls: $?"`, "", 0); !strings.Contains(out, "no ls: 127") {
		t.Errorf("the host's ls ran after the move: %q", out)
	}
}

// TestAdoptForkServer: a server started from a copy of the root's bash is
// the agent's once adopted, and is ended instead when the machine runs
// systemd, its root is an image, or the root's bash is another file.
func TestAdoptForkServer(t *testing.T) {
	useForkServer(t)
	if !canSetArgs(t) {
		defer func(b string) { forkServerBootstrap = b }(forkServerBootstrap)
		forkServerBootstrap = forkBootstrapKeepArgs
	}
	fi, err := os.Stat(bashPath)
	if err != nil {
		t.Fatal(err)
	}
	same := shellCopy{path: bashPath, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	other := same
	other.mtime++
	forkServers.mu.Lock()
	first := forkServers.cur
	forkServers.cur = nil
	forkServers.mu.Unlock()
	first.kill()
	for _, tt := range []struct {
		name  string
		cfg   agentproto.BootConfig
		shell shellCopy
		keep  bool
	}{
		{"the host's root", agentproto.BootConfig{}, same, true},
		{"systemd", agentproto.BootConfig{Init: initSystemd}, same, false},
		{"an image", agentproto.BootConfig{Image: &agentproto.RootImage{Name: "debian:bookworm"}}, same, false},
		{"another bash", agentproto.BootConfig{}, other, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := startForkServer(forkLib, strictShell(), forkServerBootstrap)
			if err != nil {
				t.Fatal(err)
			}
			f.shell = &tt.shell
			adoptForkServer(f, tt.cfg, false)
			forkServers.mu.Lock()
			cur := forkServers.cur
			forkServers.cur = nil
			forkServers.mu.Unlock()
			select {
			case <-f.exited:
				if tt.keep {
					t.Error("the server was ended")
				}
			default:
				if !tt.keep {
					t.Error("the server goes on")
				}
				f.kill()
			}
			if (cur == f) != tt.keep {
				t.Errorf("the agent's server is the early one: %v, want %v", cur == f, tt.keep)
			}
		})
	}
}
