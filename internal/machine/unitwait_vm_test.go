package machine_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSystemdWaitUnit boots one systemd guest and waits for its units as
// wait_for_unit does: multi-user.target, one that becomes active after a
// 2 s ExecStartPre, one that fails, one with no job, one that does not
// exist, a user's unit, and declared services rendered as
// units (readiness from the journal, the environment as declared).
func TestSystemdWaitUnit(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	if testing.Short() {
		t.Skip("boots a systemd VM")
	}
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sd", Init: spec.InitSystemd,
		Setup: spec.Setup{
			Users: []spec.Account{{Name: "alice"}},
			Files: []spec.File{
				{Path: "/etc/systemd/user/hello.service", Content: "[Service]\nExecStart=/bin/sleep infinity\n"},
				// A drop-in, not a .wants link: the host's links are hidden.
				// Type=oneshot: a simple service is active between its
				// fork and its exit, and a wait may catch that moment
				// (CI did, under load); a oneshot goes from activating
				// to failed.
				{Path: "/etc/systemd/user/bad.service", Content: "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo bad-user-marker; exit 4'\n"},
				{Path: "/etc/systemd/user/default.target.d/hello.conf", Content: "[Unit]\nWants=hello.service bad.service\n"},
			},
		},
		Units: []spec.UnitFile{
			{Name: "slow.service", Text: "[Service]\nExecStartPre=/bin/sleep 2\nExecStart=/bin/sleep infinity\n"},
			{Name: "broken.service", Text: "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo broken-marker-output; exit 3'\n" +
				"[Install]\nWantedBy=multi-user.target\n"},
			{Name: "idle.service", Text: "[Service]\nExecStart=/bin/sleep infinity\n"},
		},
		Services: []agentproto.Service{
			{Name: "logready", Command: "sleep 1; echo 'now ready'; exec sleep infinity", ReadyLog: "^now ready$"},
			{Name: "env", Command: `printf '%s|%s|%s|%s\n' "$A" "$B" "$C" "$HOME" > /tmp/env; echo "$((1+1)) 100%" > /tmp/cmd; exec sleep infinity`,
				Env: []string{"A=two words", `B=say "hi"`, "C=$HOME 50% \\n"}, ReadyFile: "/tmp/cmd"},
		},
	}})
	timeout := time.Minute

	t.Run("multi-user.target", func(t *testing.T) {
		if _, err := m.WaitUnitAsWritten(ctx, "multi-user.target", "", timeout); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("transition", func(t *testing.T) {
		if _, err := m.Succeed(ctx, "systemctl start --no-block slow.service"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitUnitAsWritten(ctx, "slow", "", timeout); err != nil {
			t.Fatal(err)
		}
		// How long after the transition the host knew: the unit's
		// ActiveEnterTimestampMonotonic against the guest's clock read
		// by the next command, which adds a command's round trip
		// (measured after).
		out, err := m.Succeed(ctx, "cat /proc/uptime; systemctl show -P ActiveEnterTimestampMonotonic slow.service")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := m.Succeed(ctx, "cat /proc/uptime"); err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		f := strings.Fields(out)
		up, _ := strconv.ParseFloat(f[0], 64)
		entered, _ := strconv.ParseFloat(f[2], 64)
		late := time.Duration((up - entered/1e6) * float64(time.Second))
		t.Logf("slow.service active at %.2f s uptime; the next command read the clock %v later (a command's round trip: %v)",
			entered/1e6, late, rtt)
		if late > time.Second {
			t.Errorf("the wait returned %v after the transition, want well under 1 s", late)
		}
	})

	t.Run("per call, active", func(t *testing.T) {
		const n = 10
		var guest time.Duration
		start := time.Now()
		for range n {
			d, err := m.WaitUnitAsWritten(ctx, "multi-user.target", "", timeout)
			if err != nil {
				t.Fatal(err)
			}
			guest += d
		}
		t.Logf("an active unit: %v per call on the host, %v in the guest", time.Since(start)/n, guest/n)
	})

	failsAtOnce := []struct {
		name, unit string
		want       []string
	}{
		{"failed", "broken", []string{"unit broken.service failed (result: exit-code)",
			"$ systemctl status --no-pager --lines=0 broken.service", "broken.service", "status=3",
			"$ journalctl -u broken.service -n 20 --no-pager", "broken-marker-output"}},
		{"no job", "idle.service", []string{"unit idle.service is inactive and no job is pending"}},
		{"missing", "nosuch", []string{"unit nosuch.service not found"}},
	}
	for _, tt := range failsAtOnce {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := m.WaitUnitAsWritten(ctx, tt.unit, "", timeout)
			took := time.Since(start)
			if err == nil {
				t.Fatal("the wait succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var te *machine.TimeoutError
			if errors.As(err, &te) || took > 10*time.Second {
				t.Errorf("failed after %v (%v), want at once", took, err)
			}
			t.Logf("failed in %v", took)
		})
	}

	t.Run("user unit", func(t *testing.T) {
		start := time.Now()
		if _, err := m.WaitUnitAsWritten(ctx, "hello", "alice", timeout); err != nil {
			t.Fatal(err)
		}
		t.Logf("alice's manager started and hello.service active in %v", time.Since(start))
		_, err := m.WaitUnitAsWritten(ctx, "bad", "alice", timeout)
		for _, w := range []string{"unit bad.service failed (result: exit-code)",
			"$ systemctl --user status --no-pager --lines=0 bad.service  # as alice", "status=4",
			"USER_UNIT=bad.service", "bad-user-marker"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("the failed user unit's error lacks %q:\n%v", w, err)
			}
		}
		_, err = m.WaitUnitAsWritten(ctx, "hello", "nosuchuser", timeout)
		if err == nil || !strings.Contains(err.Error(), "no such user in the guest") {
			t.Errorf("got %v, want the missing user named", err)
		}
	})

	t.Run("service ready from its log", func(t *testing.T) {
		if _, err := m.WaitUnitAsWritten(ctx, "logready", "", timeout); err != nil {
			t.Fatal(err)
		}
		out, err := m.Succeed(ctx, "journalctl -u logready -o cat --no-pager")
		if err != nil || !strings.Contains(out, "now ready") {
			t.Errorf("journal of logready: %q, %v; want the ready line", out, err)
		}
		// The journal forwards it to the console as its identifier and
		// PID say, as options.go's Service documents; not as fast mode's
		// "service logready: now ready".
		if _, err := m.WaitForConsoleText(ctx, `logready\[[0-9]+\]: now ready$`, 10*time.Second); err != nil {
			t.Errorf("the ready line on the console: %v", err)
		}
	})

	t.Run("service environment", func(t *testing.T) {
		if _, err := m.WaitUnitAsWritten(ctx, "env", "", timeout); err != nil {
			t.Fatal(err)
		}
		out, err := m.Succeed(ctx, "cat /tmp/env /tmp/cmd")
		if want := "two words|say \"hi\"|$HOME 50% \\n|/root\n2 100%\n"; err != nil || out != want {
			t.Errorf("got %q, %v; want %q", out, err, want)
		}
	})
}
