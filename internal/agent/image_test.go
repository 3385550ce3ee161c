package agent

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

func TestPlainArgv(t *testing.T) {
	for _, tt := range []struct {
		line string
		want []string
	}{
		{"sleep 1000", []string{"sleep", "1000"}},
		{"/usr/sbin/nginx -g daemon=off -c /etc/n.conf", []string{"/usr/sbin/nginx", "-g", "daemon=off", "-c", "/etc/n.conf"}},
		{"echo $HOME", nil},
		{"a | b", nil},
		{"echo 'x y'", nil},
		{"a && b", nil},
		{"  ", nil},
	} {
		got, ok := plainArgv(tt.line)
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("plainArgv(%q): got %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

// TestNoShell: on an image without the shell, a command line fails naming
// the image, and a plain service command runs as argv; on the host's root
// (rootImage "") nothing changes.
func TestNoShell(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "sh")
	defer func(old string) { rootImage, posixShell.path = old, "/bin/sh" }(rootImage)
	posixShell.path = missing

	rootImage = ""
	if err := noShellError(missing); err != nil {
		t.Errorf("host root: got %v, want no error", err)
	}
	if req := serviceExec(agentproto.Service{Command: "sleep 5"}); req.Argv != nil {
		t.Errorf("host root service: got argv %q, want the command line", req.Argv)
	}

	rootImage = "test:bare"
	err := noShellError(missing)
	if err == nil || !strings.Contains(err.Error(), "the image test:bare has no "+missing) {
		t.Errorf("image without shell: got %v, want the image and shell named", err)
	}
	// A .star file cannot give an argv: the message says what it can do.
	if err == nil || strings.Contains(err.Error(), "argv") || !strings.Contains(err.Error(), "add a shell to the image") ||
		!strings.Contains(err.Error(), "vmlab shell MACHINE -- PROGRAM") {
		t.Errorf("image without shell: got %v, want what a test file can do (add a shell), not an argv it cannot give", err)
	}
	if _, _, err := program(&agentproto.Exec{Command: "echo hi"}, posixShell); err == nil {
		t.Errorf("program: got no error, want the missing shell")
	}
	if req := serviceExec(agentproto.Service{Command: "sleep 5"}); !slices.Equal(req.Argv, []string{"sleep", "5"}) || req.Command != "" {
		t.Errorf("plain service: got argv %q command %q, want argv [sleep 5]", req.Argv, req.Command)
	}
	if req := serviceExec(agentproto.Service{Command: "sleep 5 && true"}); req.Argv != nil {
		t.Errorf("shell service: got argv %q, want the command line (which then fails naming the shell)", req.Argv)
	}
}
