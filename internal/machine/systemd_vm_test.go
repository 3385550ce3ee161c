package machine_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// hostEnabled lists the units the host's `systemctl enable` linked into
// multi-user.target (postgresql, nfs-server, ... on the machines vmlab is
// developed on).
func hostEnabled(t *testing.T) []string {
	entries, _ := os.ReadDir("/etc/systemd/system/multi-user.target.wants")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func needsSystemd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(spec.SystemdPath); err != nil {
		t.Skipf("the host's root has no %s to boot", spec.SystemdPath)
	}
}

// waitMultiUser waits for multi-user.target, whose start the boot queued:
// systemctl start joins that job and returns when it is done.
func waitMultiUser(t *testing.T, ctx context.Context, m *machine.Machine) {
	t.Helper()
	if out, err := m.Succeed(ctx, "systemctl start multi-user.target"); err != nil {
		t.Fatalf("multi-user.target: %v: %s", err, out)
	}
}

// TestSystemdBoot boots a machine whose init is systemd: systemd is PID 1,
// the agent serves as its unit, a declared unit and a distribution's unit
// named in Enable start with multi-user.target and the journal reaches the
// console log, while the units the host enabled, vmlab's masks (udev) and
// dbus stay down; a user's manager still starts, dbus and logind with it. Before, init = "systemd" booted the agent as PID 1 anyway.
func TestSystemdBoot(t *testing.T) {
	needsSystemd(t)
	if _, err := os.Stat("/lib/systemd/system/rpcbind.service"); err != nil {
		t.Skip("needs rpcbind (scripts/deps installs nfs-kernel-server) as a distribution's unit to enable")
	}
	ctx := t.Context()
	hello := "[Unit]\nDescription=declared hello\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
		"ExecStart=/bin/echo hello-from-a-declared-unit\n[Install]\nWantedBy=multi-user.target\n"
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysd", Init: spec.InitSystemd,
		Units: []spec.UnitFile{{Name: "hello.service", Text: hello}}, Enable: []string{"rpcbind"},
		Setup: spec.Setup{Users: []spec.Account{{Name: "alice"}}}}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stages := m.Hello().Stages
	t.Logf("serving at guest uptime %v (%v)", stages[len(stages)-1].Uptime, stages)
	waitMultiUser(t, ctx, m)
	tests := []struct{ name, command, want string }{
		{"systemd is PID 1", "cat /proc/1/comm", "systemd\n"},
		{"the agent is its unit", "systemctl is-active vmlab-agent.service", "active\n"},
		{"declared unit", "systemctl is-active hello.service", "active\n"},
		{"enabled by name", "systemctl is-active rpcbind.service", "active\n"},
		{"masked", "systemctl is-active systemd-udevd.service || true", "inactive\n"},
		{"dbus not wanted", "systemctl is-active dbus.service || true", "inactive\n"},
		{"no host enablement", "ls /etc/systemd/system/multi-user.target.wants 2>&1 || true",
			"ls: cannot access '/etc/systemd/system/multi-user.target.wants': No such file or directory\n"},
	}
	for _, name := range hostEnabled(t) {
		if name != "rpcbind.service" {
			tests = append(tests, struct{ name, command, want string }{"host's " + name,
				"systemctl is-active " + name + " || true", "inactive\n"})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := m.Succeed(ctx, tt.command); err != nil || out != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.command, out, err, tt.want)
			}
		})
	}
	// dbus and logind are not started at boot, but on demand: a user's
	// manager needs them (user-runtime-dir@ asks logind over the bus).
	t.Run("a user's manager", func(t *testing.T) {
		cmd := "systemctl start user@$(id -u alice).service && systemctl is-active user@$(id -u alice).service"
		if out, err := m.Succeed(ctx, cmd); err != nil || out != "active\n" {
			t.Errorf("%s: got %q, %v; want %q", cmd, out, err, "active\n")
		}
	})
	t.Run("journal on the console", func(t *testing.T) {
		if _, err := m.WaitForConsoleText(ctx, "hello-from-a-declared-unit", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// TestSystemdPower checks power in a systemd guest: reboot(), crash() +
// start() and shutdown() + start() keep what the guest wrote in /root, and
// the links its own `systemctl enable` made survive while the host's stay
// hidden; a unit that will not stop does not hold shutdown() beyond the
// agent's bound. Before, the agent's own power-off fought systemd.
func TestSystemdPower(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	needsSystemd(t)
	ctx := t.Context()
	// stubborn ignores SIGTERM and has no stop timeout: only the agent's
	// bound ends a shutdown while it runs. It is not enabled.
	stubborn := "[Service]\nExecStart=/bin/sh -c \"trap '' TERM; while :; do sleep 1; done\"\nTimeoutStopSec=infinity\n"
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysp", Init: spec.InitSystemd,
		Units: []spec.UnitFile{{Name: "stubborn.service", Text: stubborn}}}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	guestUnit := "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	if _, err := m.Succeed(ctx, "echo kept > /root/kept && printf '"+guestUnit+"' > /etc/systemd/system/guest.service && "+
		"systemctl enable guest.service 2>&1 && sync"); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T) {
		t.Helper()
		waitMultiUser(t, ctx, m)
		out, err := m.Succeed(ctx, "cat /root/kept; systemctl is-active guest.service; ls /etc/systemd/system/multi-user.target.wants")
		if want := "kept\nactive\nguest.service\n"; err != nil || out != want {
			t.Errorf("after the boot: got %q, %v; want %q (the file, the guest's own enabled unit, none of the host's)", out, err, want)
		}
	}
	t.Run("reboot", func(t *testing.T) {
		start := time.Now()
		if err := m.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("reboot took %v", time.Since(start))
		check(t)
	})
	t.Run("crash and start", func(t *testing.T) {
		m.Crash()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
	t.Run("shutdown held by a unit", func(t *testing.T) {
		if _, err := m.Succeed(ctx, "systemctl start stubborn.service"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := m.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// The agent forces the power-off 20 s after it asked systemd.
		took := time.Since(start)
		t.Logf("shutdown took %v", took)
		if took < 15*time.Second || took > 35*time.Second {
			t.Errorf("shutdown took %v, want the agent's 20 s bound to end it", took)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
}
