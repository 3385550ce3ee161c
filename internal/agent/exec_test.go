package agent

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestShells checks that test commands run as in NixOS (bash -euo pipefail,
// so `false | true` fails), that the escape hatch gives sh semantics back,
// that a guest without bash falls back to sh, and that services stay sh.
// It runs the shells of the host (Debian: bash and dash).
func TestShells(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this host")
	}
	noBash := filepath.Join(t.TempDir(), "bash")
	tests := []struct {
		name    string
		bash    string // bashPath
		service bool
		cmd     string
		want    int
	}{
		{"pipefail", "/bin/bash", false, "false | true", 1},
		{"errexit", "/bin/bash", false, "false; true", 1},
		{"nounset", "/bin/bash", false, "echo $UNSET_VARIABLE", 1},
		{"success", "/bin/bash", false, "true | true && echo ok", 0},
		{"escape hatch", "/bin/bash", false, "set +euo pipefail; false | true", 0},
		{"sh -c inside", "/bin/bash", false, "sh -c 'false | true'", 0},
		{"no bash in the guest", noBash, false, "false | true", 0},
		{"service", "/bin/bash", true, "false | true", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := bashPath
			bashPath = tt.bash
			defer func() { bashPath = old }()
			sh := strictShell()
			if tt.service {
				sh = posixShell
			}
			cmd, err := command(t.Context(), &agentproto.Exec{Command: tt.cmd}, sh)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			var exitErr *exec.ExitError
			if err := cmd.Run(); errors.As(err, &exitErr) {
				got = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s under %v: got exit %d, want %d", tt.cmd, cmd.Args[:len(cmd.Args)-1], got, tt.want)
			}
		})
	}
}

// TestGuestPath checks that waits and copies resolve a relative path where
// commands run: wait_for_file("out") after `touch out` looked in the agent's
// directory instead and hung for 15 minutes.
func TestGuestPath(t *testing.T) {
	cmd, err := command(t.Context(), &agentproto.Exec{Command: "true"}, posixShell)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"relative", "out", filepath.Join(cmd.Dir, "out")},
		{"relative with dots", "a/../b", filepath.Join(cmd.Dir, "b")},
		{"absolute", "/tmp/out", "/tmp/out"},
		{"none (a port wait)", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := guestPath(tt.path, ""); got != tt.want {
				t.Errorf("guestPath(%q): got %q, want %q (commands run in %s)", tt.path, got, tt.want, cmd.Dir)
			}
		})
	}
}
