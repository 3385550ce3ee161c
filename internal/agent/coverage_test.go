package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// withCoverageOn sets the coverage environment for dir for the test.
func withCoverageOn(t *testing.T, dir string) {
	oldAt, oldEnv := coverageAt, coverageEnv
	setCoverage(agentproto.BootConfig{Coverage: dir})
	t.Cleanup(func() { coverageAt, coverageEnv = oldAt, oldEnv })
}

// TestCoverageEnv runs commands the way the agent starts them, with the
// machine collecting coverage: each sees GOCOVERDIR, GCOV_PREFIX and
// GCOV_PREFIX_STRIP=0 under the coverage directory, as a command, a
// service (sh) and another user would; a request that sets one keeps its
// value; without coverage, none is set.
func TestCoverageEnv(t *testing.T) {
	const show = `echo "${GOCOVERDIR-}|${GCOV_PREFIX-}|${GCOV_PREFIX_STRIP-}"`
	tests := []struct {
		name     string
		coverage string
		req      agentproto.Exec
		sh       shell
		want     string
	}{
		{"command", "/cov", agentproto.Exec{Command: show}, strictShell(), "/cov/go|/cov/gcov|0"},
		{"service", "/cov", agentproto.Exec{Command: show}, posixShell, "/cov/go|/cov/gcov|0"},
		{"the request's own wins", "/cov", agentproto.Exec{Command: show, Env: []string{"GOCOVERDIR=/mine", "GCOV_PREFIX_STRIP=2"}}, strictShell(), "/mine|/cov/gcov|2"},
		{"no coverage", "", agentproto.Exec{Command: show}, strictShell(), "||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withCoverageOn(t, tt.coverage)
			cmd, err := command(t.Context(), &tt.req, tt.sh)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestCoverageSettings: a systemd guest collecting coverage gets drop-ins
// that give every unit of the system manager and of users' managers the
// coverage environment (DefaultEnvironment=, which a unit's Environment=
// overrides); one not collecting gets none.
func TestCoverageSettings(t *testing.T) {
	root := t.TempDir()
	withCoverageOn(t, "")
	if err := writeRunUnits(root, false); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "run/systemd/*.conf.d/vmlab-coverage.conf")); len(m) > 0 {
		t.Errorf("without coverage: got %v, want no coverage drop-in", m)
	}
	withCoverageOn(t, agentproto.CoverageGuestDir)
	if err := writeRunUnits(root, false); err != nil {
		t.Fatal(err)
	}
	want := `DefaultEnvironment="GOCOVERDIR=/run/vmlab/coverage/go" "GCOV_PREFIX=/run/vmlab/coverage/gcov" "GCOV_PREFIX_STRIP=0"`
	for _, manager := range []string{"system", "user"} {
		b, err := os.ReadFile(filepath.Join(root, "run/systemd", manager+".conf.d/vmlab-coverage.conf"))
		lines := strings.Split(string(b), "\n")
		if err != nil || !slices.Contains(lines, "[Manager]") || !slices.Contains(lines, want) {
			t.Errorf("%s manager's drop-in: got %q, %v; want [Manager] and %s", manager, b, err, want)
		}
	}
}

// TestServiceKilledNote: a service run that a signal ends during the test
// (here the program itself, exec'd by sh) is noted for the coverage state.
func TestServiceKilledNote(t *testing.T) {
	var sv services
	if err := sv.start(t.Context(), []agentproto.Service{{Name: "s", Command: "echo up; exec sleep 1000", ReadyLog: "^up$"}}); err != nil {
		t.Fatal(err)
	}
	defer sv.stop(time.Second)
	if res := sv.waitUnit(t.Context(), "s", 5*time.Second); res.Error != "" || res.TimedOut {
		t.Fatalf("service not ready: %+v", res)
	}
	s := sv.byName["s"]
	s.mu.Lock()
	syscall.Kill(-s.pgid, syscall.SIGKILL)
	s.mu.Unlock()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		done, changed := s.done, s.changed
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("the killed service did not end in 5 s")
		}
	}
	want := []string{"service s was killed by signal 9 (killed)"}
	if got := sv.killed(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
