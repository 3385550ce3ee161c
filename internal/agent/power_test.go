package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestServicesStop checks the first step of a clean shutdown on the host's
// processes: a service that traps SIGTERM runs its trap, one that ignores
// SIGTERM is killed when the grace period ends, and neither is restarted.
// Only the one killed says so in the coverage notes: the stop's SIGTERM
// ends the sh that runs a service whatever the program did.
func TestServicesStop(t *testing.T) {
	dir := t.TempDir()
	stopped := filepath.Join(dir, "stopped")
	const grace = 500 * time.Millisecond
	tests := []struct {
		name    string
		command string
		wantMin time.Duration // stop takes at least this long
		wantMax time.Duration // and at most this
		file    bool          // the trap wrote the file
		killed  []string      // sv.killed()
	}{
		{"traps TERM", "trap 'echo bye > " + stopped + "; exit 0' TERM; echo up; while :; do sleep 0.05; done", 0, grace, true, nil},
		{"ignores TERM", "trap '' TERM; echo up; while :; do sleep 0.05; done", grace, grace + time.Second, false,
			[]string{"service s did not exit within 500ms of SIGTERM and was killed"}},
		{"dies of TERM", "echo up; exec sleep 1000", 0, grace, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(stopped)
			// Ready once the trap is set: a SIGTERM before would kill it.
			var sv services
			err := sv.start(t.Context(), []agentproto.Service{{Name: "s", Command: tt.command, Restart: "always", ReadyLog: "^up$"}})
			if err != nil {
				t.Fatal(err)
			}
			if res := sv.waitUnit(t.Context(), "s", 5*time.Second); res.Error != "" || res.TimedOut {
				t.Fatalf("service not ready: %+v", res)
			}
			start := time.Now()
			sv.stop(grace)
			took := time.Since(start)
			if took < tt.wantMin || took > tt.wantMax {
				t.Errorf("stop took %v, want %v to %v", took, tt.wantMin, tt.wantMax)
			}
			if _, err := os.Stat(stopped); (err == nil) != tt.file {
				t.Errorf("trap's file exists: got %v, want %v", err == nil, tt.file)
			}
			if s := sv.byName["s"]; s.restarts != 0 || !s.done {
				t.Errorf("got %d restarts, done %v; want none, done", s.restarts, s.done)
			}
			if got := sv.killed(); !slices.Equal(got, tt.killed) {
				t.Errorf("killed: got %q, want %q", got, tt.killed)
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{"/mnt/a\\040b": "/mnt/a b", "/plain": "/plain", "/x\\134y": "/x\\y"} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q): got %q, want %q", in, got, want)
		}
	}
}
