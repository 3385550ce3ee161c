package agent

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestMain builds the static agent for the tests that boot a machine, and
// only for them: -short runs none.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	vmtest.Main(m)
}

// TestCommandSemanticsInVM runs commandSemantics through the whole path:
// the host's client, the channel, the agent as the guest's PID 1 and the
// guest's bash, as a test's commands run.
func TestCommandSemanticsInVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "semantics"}, BootTimeout: 5 * time.Minute})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range commandSemantics {
		t.Run(tt.name, func(t *testing.T) {
			var opts []machine.ExecOption
			if tt.user != "" {
				opts = append(opts, machine.User(tt.user))
			}
			if tt.dir != "" {
				opts = append(opts, machine.Dir(tt.dir))
			}
			if len(tt.env) > 0 {
				opts = append(opts, machine.Env(tt.env...))
			}
			if tt.stdin != "" {
				opts = append(opts, machine.Stdin(strings.NewReader(tt.stdin)))
			}
			if tt.timeout > 0 {
				opts = append(opts, machine.Timeout(tt.timeout))
			}
			res, err := m.Execute(ctx, tt.cmd, opts...)
			var timeout *machine.TimeoutError
			switch {
			case tt.timed && !errors.As(err, &timeout):
				t.Fatalf("got error %v, want a timeout", err)
			case tt.timed:
				pid := strings.TrimSpace(res.Stdout)
				// Ended (gone, or a zombie until PID 1 reaps it) within 5 s.
				gone := "for i in $(seq 500); do { [ -e /proc/" + pid + " ] && ! grep -q '^State:.*Z' /proc/" + pid + "/status; } || exit 0; sleep 0.01; done; exit 1"
				if _, err := m.Succeed(ctx, gone); err != nil {
					t.Errorf("the background process %s outlived the timeout by 5 s: %v", pid, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if res.Stdout != tt.stdout {
				t.Errorf("stdout: got %q, want %q", res.Stdout, tt.stdout)
			}
			if (tt.stderr == "" && res.Stderr != "") || !regexp.MustCompile(tt.stderr).MatchString(res.Stderr) {
				t.Errorf("stderr: got %q, want a match of %q", res.Stderr, tt.stderr)
			}
			if res.Status != tt.exit || res.Signal != tt.signal {
				t.Errorf("got exit %d, signal %q; want exit %d, signal %q", res.Status, res.Signal, tt.exit, tt.signal)
			}
		})
	}
}
