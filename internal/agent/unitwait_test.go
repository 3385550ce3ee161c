package agent

import (
	"context"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/sdbus/sdbustest"
)

// fakeSystemd points the unit waits at a fake system manager, and their
// details at a stand-in for systemctl and journalctl that prints the
// command it was given.
// readCtx bounds a test's wait for the fake manager's reads: a wait that
// failed instead reads no more, and the test fails then instead of hanging.
func readCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func fakeSystemd(t *testing.T) *sdbustest.Manager {
	m := sdbustest.NewManager(t)
	oldSystem, oldUser, oldDetail := systemSocket, userSocket, detailCommand
	dropSystemConn := func() {
		systemBus.mu.Lock()
		if systemBus.conn != nil {
			systemBus.conn.Close()
			systemBus.conn = nil
		}
		systemBus.mu.Unlock()
	}
	dropSystemConn()
	t.Cleanup(func() {
		dropSystemConn()
		systemSocket, userSocket, detailCommand = oldSystem, oldUser, oldDetail
	})
	systemSocket = m.Path
	detailCommand = func(_ context.Context, argv []string, userName string, env []string) string {
		return "ran " + strings.Join(argv, " ") + " as " + userName
	}
	return m
}

// waitAsync runs waitSystemdUnit in the background.
func waitAsync(ctx context.Context, w agentproto.Wait) <-chan agentproto.Result {
	res := make(chan agentproto.Result, 1)
	go func() { res <- waitSystemdUnit(ctx, w) }()
	return res
}

func result(t *testing.T, res <-chan agentproto.Result) agentproto.Result {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end within 10 s")
	}
	return agentproto.Result{}
}

func TestWaitSystemdUnitActive(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "active", Sub: "running"})
	res := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: 10 * time.Second})
	if res.Error != "" || res.TimedOut || res.Exit != 0 {
		t.Fatalf("got %+v, want success", res)
	}
	// An active unit costs one property read.
	if err := m.WaitRead(readCtx(t), "web.service", 1); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitRead(timeoutCtx(t, 0), "web.service", 2); err == nil {
		t.Error("an active unit's properties were read twice")
	}
}

func timeoutCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestWaitSystemdUnitTransition: the wait ends on the signal of the
// unit's change, not on a poll.
func TestWaitSystemdUnitTransition(t *testing.T) {
	tests := []struct {
		name  string
		unit  string
		from  sdbustest.Unit
		to    sdbustest.Unit
		jobs  uint32
		error string // "" for success
	}{
		{"becomes active", "web.service", sdbustest.Unit{Active: "activating", Sub: "start-pre", Job: 7},
			sdbustest.Unit{Active: "active", Sub: "running"}, 1, ""},
		{"a target", "multi-user.target", sdbustest.Unit{Active: "inactive", Sub: "dead", Job: 3},
			sdbustest.Unit{Active: "active", Sub: "active"}, 1, ""},
		{"reloading counts as active", "web.service", sdbustest.Unit{Active: "activating", Sub: "start", Job: 7},
			sdbustest.Unit{Active: "reloading", Sub: "reload"}, 1, ""},
		{"fails", "web.service", sdbustest.Unit{Active: "activating", Sub: "start", Job: 7},
			sdbustest.Unit{Active: "failed", Sub: "failed", Result: "exit-code"}, 1, "unit web.service failed (result: exit-code)"},
		{"an idle unit that another job starts", "web.service", sdbustest.Unit{Active: "inactive", Sub: "dead"},
			sdbustest.Unit{Active: "active", Sub: "running"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fakeSystemd(t)
			m.SetJobs(tt.jobs)
			m.Set(tt.unit, tt.from)
			res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: tt.unit, Timeout: time.Minute})
			// Get ActiveState, then GetAll: the wait has read the state
			// and waits for a signal.
			if err := m.WaitRead(readCtx(t), tt.unit, 2); err != nil {
				t.Fatal(err)
			}
			m.Set(tt.unit, tt.to)
			r := result(t, res)
			if r.Error != tt.error {
				t.Errorf("got error %q, want %q", r.Error, tt.error)
			}
			if tt.error != "" && (r.Exit != 1 || !strings.Contains(r.Output, "ran systemctl status --no-pager --lines=0 "+tt.unit)) {
				t.Errorf("got exit %d, output %q; want 1 and the unit's status", r.Exit, r.Output)
			}
		})
	}
}

// TestWaitSystemdUnitFailsAtOnce: a unit that will not start fails the
// wait without waiting for anything.
func TestWaitSystemdUnitFailsAtOnce(t *testing.T) {
	tests := []struct {
		name  string
		path  string // as the test file names it
		unit  string // as systemd does
		state *sdbustest.Unit
		error string
	}{
		{"failed", "web", "web.service", &sdbustest.Unit{Active: "failed", Sub: "failed", Result: "timeout"},
			"unit web.service failed (result: timeout)"},
		{"not found", "nosuch", "nosuch.service", nil,
			"unit nosuch.service not found: no unit file in the guest (declare it with machine(units = ...), or install the package that has it)"},
		{"inactive with no job", "web", "web.service", &sdbustest.Unit{Active: "inactive", Sub: "dead"},
			"unit web.service is inactive and no job is pending: nothing will start it (enable it with machine(enable = ...) or start it with start_job)"},
		{"masked", "web.service", "web.service", &sdbustest.Unit{Load: "masked", Active: "inactive", Sub: "dead"},
			"unit web.service is masked: nothing can start it"},
		{"condition not met", "sys-kernel-config.mount", "sys-kernel-config.mount",
			&sdbustest.Unit{Active: "inactive", Sub: "dead", ConditionFailed: true},
			"unit sys-kernel-config.mount was skipped: a start condition was not met (see its status below)"},
		{"assertion failed", "web", "web.service", &sdbustest.Unit{Active: "inactive", Sub: "dead", AssertFailed: true},
			"unit web.service was not started: a start assertion failed (see its status below)"},
		{"not loadable", "bad.socket", "bad.socket", &sdbustest.Unit{Load: "bad-setting", Active: "inactive", Sub: "dead"},
			"unit bad.socket could not be loaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fakeSystemd(t)
			if tt.state != nil {
				m.Set(tt.unit, *tt.state)
			}
			r := result(t, waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: tt.path, Timeout: time.Minute}))
			if !strings.HasPrefix(r.Error, tt.error) || r.Exit != 1 {
				t.Errorf("got error %q (exit %d), want %q", r.Error, r.Exit, tt.error)
			}
			want := "$ systemctl status --no-pager --lines=0 " + tt.unit + "\nran systemctl status --no-pager --lines=0 " + tt.unit + " as \n" +
				"$ journalctl -u " + tt.unit + " -n 20 --no-pager\nran journalctl -u " + tt.unit + " -n 20 --no-pager as "
			if r.Output != want {
				t.Errorf("output\n%s\nwant\n%s", r.Output, want)
			}
		})
	}
}

// TestWaitSystemdUnitJobsEnd: an idle unit is waited for while the manager
// has jobs (one of them may start it), and fails when the last one ends.
func TestWaitSystemdUnitJobsEnd(t *testing.T) {
	m := fakeSystemd(t)
	m.SetJobs(2)
	m.Set("web.service", sdbustest.Unit{Active: "inactive", Sub: "dead"})
	res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web.service", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "web.service", 2); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		t.Fatalf("the wait ended with %+v while jobs were pending", r)
	default:
	}
	m.SetJobs(0)
	r := result(t, res)
	if !strings.HasPrefix(r.Error, "unit web.service is inactive and no job is pending") {
		t.Errorf("got %q, want the inactive unit's error", r.Error)
	}
}

func TestWaitSystemdUnitTimeout(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "activating", Sub: "start-pre", Job: 4})
	r := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: 100 * time.Millisecond})
	if !r.TimedOut || r.Error != "" {
		t.Fatalf("got %+v, want a timeout", r)
	}
	if want := "web.service is activating (start-pre), job 4 pending\n\n$ systemctl status --no-pager --lines=0 web.service\n"; !strings.HasPrefix(r.Output, want) {
		t.Errorf("output\n%s\nwant it to start with\n%s", r.Output, want)
	}
}

func TestWaitSystemdUnitCanceled(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "activating", Sub: "start", Job: 4})
	ctx, cancel := context.WithCancel(t.Context())
	res := waitAsync(ctx, agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "web.service", 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := result(t, res); !r.Canceled || r.Output != "" {
		t.Errorf("got %+v, want canceled with no details", r)
	}
}

func TestWaitSystemdUnitNoManager(t *testing.T) {
	fakeSystemd(t)
	systemSocket = t.TempDir() + "/private"
	r := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	if !strings.Contains(r.Error, "connect to systemd at "+systemSocket) {
		t.Errorf("got %+v, want the connection's error", r)
	}
}

func TestWaitSystemdUnitNoSuchUser(t *testing.T) {
	fakeSystemd(t)
	r := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", User: "nosuchuser", Timeout: time.Minute})
	want := `wait for a unit of user nosuchuser: no such user in the guest (declare it with machine(users = ["nosuchuser"]) or create it in setup)`
	if r.Error != want {
		t.Errorf("got %q, want %q", r.Error, want)
	}
}

// TestWaitSystemdUserUnit: a user's unit is waited for on the user's
// manager, which the system manager starts first.
func TestWaitSystemdUserUnit(t *testing.T) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this host")
	}
	sys := fakeSystemd(t)
	usr := sdbustest.NewManager(t)
	var askedUID int
	userSocket = func(uid int) string { askedUID = uid; return usr.Path }
	manager := "user@" + u.Uid + ".service"
	sys.Set(manager, sdbustest.Unit{Active: "inactive", Sub: "dead"})
	sys.OnStart = func(name string) {
		// As systemd: the start job is queued before StartUnit returns,
		// and the unit runs later. Without the job the wait could read
		// the unit before the goroutine ran (inactive, nothing pending)
		// and fail, as it did once in CI.
		sys.Set(name, sdbustest.Unit{Active: "inactive", Sub: "dead", Job: 99})
		go sys.Set(name, sdbustest.Unit{Active: "active", Sub: "running"})
	}
	usr.Set("app.service", sdbustest.Unit{Active: "failed", Sub: "failed", Result: "exit-code"})
	r := result(t, waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "app", User: "nobody", Timeout: time.Minute}))
	if r.Error != "unit app.service failed (result: exit-code)" {
		t.Errorf("got %q, want the user unit's failure", r.Error)
	}
	if started := sys.Started(); !slices.Equal(started, []string{manager}) {
		t.Errorf("system manager started %q, want [%s]", started, manager)
	}
	// A user unit is not declared in units: the hint says where its file goes.
	r2 := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "nosuch", User: "nobody", Timeout: time.Minute})
	if want := `user nobody's unit nosuch.service not found: no user unit file in the guest (write it with machine(files = {"/etc/systemd/user/nosuch.service": ...}), or install the package that has it)`; r2.Error != want {
		t.Errorf("missing user unit: got %q, want %q", r2.Error, want)
	}
	// The manager runs now: the next wait does not start it again.
	usr.Set("app.service", sdbustest.Unit{Active: "active", Sub: "running"})
	if r := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "app", User: "nobody", Timeout: time.Minute}); r.Error != "" {
		t.Errorf("second wait: %+v", r)
	}
	if started := sys.Started(); len(started) != 1 {
		t.Errorf("second wait: started %q; want nothing more", started)
	}
	if u.Uid != strconv.Itoa(askedUID) {
		t.Errorf("dialled the manager of uid %d, want %s", askedUID, u.Uid)
	}
	for _, want := range []string{
		"$ systemctl --user status --no-pager --lines=0 app.service  # as nobody\nran systemctl --user status --no-pager --lines=0 app.service as nobody",
		"_UID=" + u.Uid + " _SYSTEMD_USER_UNIT=app.service + _UID=" + u.Uid + " USER_UNIT=app.service",
	} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("output\n%s\nlacks\n%s", r.Output, want)
		}
	}
}

// TestWaitSystemdUnitFailedRestarting: a failed unit with a start job
// queued is waited for; its job's end decides.
func TestWaitSystemdUnitFailedRestarting(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "failed", Sub: "failed", Job: 9, Result: "exit-code"})
	res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "web.service", 2); err != nil {
		t.Fatal(err)
	}
	m.Set("web.service", sdbustest.Unit{Active: "active", Sub: "running"})
	if r := result(t, res); r.Error != "" || r.TimedOut {
		t.Errorf("got %+v, want success", r)
	}
}

// TestWaitSystemdUnitJobFails: a failed unit whose start job ends without
// a change of state (a dependency failed) fails the wait then.
func TestWaitSystemdUnitJobFails(t *testing.T) {
	m := fakeSystemd(t)
	m.SetJobs(5) // other jobs do not keep a failed unit waited for
	m.Set("web.service", sdbustest.Unit{Active: "failed", Sub: "failed", Job: 9, Result: "exit-code"})
	res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "web.service", 2); err != nil {
		t.Fatal(err)
	}
	m.EndJob("web.service", "dependency")
	if r := result(t, res); r.Error != "unit web.service failed (result: exit-code)" {
		t.Errorf("got %+v, want the unit's failure", r)
	}
}

// TestWaitSystemdUnitSharedConn: waits share one connection to the system
// manager, and make a new one when systemd ended it, also in the middle of
// a wait.
func TestWaitSystemdUnitSharedConn(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "active", Sub: "running"})
	w := agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute}
	for range 3 {
		if r := waitSystemdUnit(t.Context(), w); r.Error != "" {
			t.Fatal(r.Error)
		}
	}
	if n := m.Conns(); n != 1 {
		t.Errorf("3 waits made %d connections, want 1", n)
	}
	m.Set("slow.service", sdbustest.Unit{Active: "activating", Sub: "start", Job: 3})
	res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "slow", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "slow.service", 2); err != nil {
		t.Fatal(err)
	}
	m.Drop()
	// The wait connects again and reads the state anew.
	if err := m.WaitRead(readCtx(t), "slow.service", 4); err != nil {
		t.Fatal(err)
	}
	m.Set("slow.service", sdbustest.Unit{Active: "active", Sub: "running"})
	if r := result(t, res); r.Error != "" || r.TimedOut {
		t.Errorf("got %+v, want success on the new connection", r)
	}
	if n := m.Conns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestWaitSystemdUnitOtherUnits: another unit's signals do not end the
// wait, even one that says "active", also one that comes before the wait
// knows its unit's object path.
func TestWaitSystemdUnitOtherUnits(t *testing.T) {
	m := fakeSystemd(t)
	m.Set("web.service", sdbustest.Unit{Active: "activating", Sub: "start", Job: 2})
	m.OnLoad = func(string) { m.Set("early.service", sdbustest.Unit{Active: "active", Sub: "running"}) }
	res := waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	if err := m.WaitRead(readCtx(t), "web.service", 2); err != nil {
		t.Fatal(err)
	}
	m.Set("other.service", sdbustest.Unit{Active: "active", Sub: "running"})
	m.Set("web.service", sdbustest.Unit{Active: "failed", Sub: "failed", Result: "signal"})
	if r := result(t, res); r.Error != "unit web.service failed (result: signal)" {
		t.Errorf("got %+v, want web.service's failure", r)
	}
}

// TestWaitSystemdUnitSlowConnect: a wait that connects to a manager slow
// to answer does not hold the other waits past their own timeouts.
func TestWaitSystemdUnitSlowConnect(t *testing.T) {
	fakeSystemd(t)
	systemSocket = t.TempDir() + "/private"
	ln, err := net.Listen("unix", systemSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // and never answer
		}
	}()
	defer func() {
		for range len(accepted) {
			(<-accepted).Close()
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	first := waitAsync(ctx, agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: time.Minute})
	c := <-accepted
	defer c.Close()
	start := time.Now()
	r := waitSystemdUnit(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "web", Timeout: 300 * time.Millisecond})
	if took := time.Since(start); !r.TimedOut || took > 3*time.Second {
		t.Errorf("the second wait ended with %+v after %v, want a timeout after 300 ms", r, took)
	}
	cancel()
	if r := result(t, first); !r.Canceled {
		t.Errorf("first wait: got %+v, want canceled", r)
	}
}

// TestWaitSystemdUnitMaskedWhileJobs: a masked unit fails the wait at once,
// also while the manager has jobs (none of them can start it), and the
// error says when vmlab masked it.
func TestWaitSystemdUnitMaskedWhileJobs(t *testing.T) {
	m := fakeSystemd(t)
	root := t.TempDir()
	oldRoot := maskRoot
	maskRoot = root
	t.Cleanup(func() { maskRoot = oldRoot })
	if err := os.MkdirAll(root+unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", root+unitDir+"/getty@.service"); err != nil {
		t.Fatal(err)
	}
	m.SetJobs(40)
	m.Set("getty@tty1.service", sdbustest.Unit{Load: "masked", Active: "inactive", Sub: "dead"})
	r := result(t, waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "getty@tty1", Timeout: time.Minute}))
	want := "unit getty@tty1.service is masked: nothing can start it (vmlab masks getty@.service by default: " +
		"/run/systemd/system/getty@.service -> /dev/null; name it in machine(enable = [...]) to unmask it)"
	if r.Error != want || r.Exit != 1 {
		t.Errorf("got %q (exit %d), want %q", r.Error, r.Exit, want)
	}
}

// TestWaitSystemdUserManagerFails: when a user's manager fails to start,
// the error names the manager's unit and explains that one (the system's
// status and journal of user@UID.service), not the user's unit.
func TestWaitSystemdUserManagerFails(t *testing.T) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this host")
	}
	sys := fakeSystemd(t)
	manager := "user@" + u.Uid + ".service"
	sys.Set(manager, sdbustest.Unit{Active: "inactive", Sub: "dead"})
	sys.OnStart = func(name string) {
		sys.Set(name, sdbustest.Unit{Active: "failed", Sub: "failed", Result: "exit-code"})
	}
	r := result(t, waitAsync(t.Context(), agentproto.Wait{Kind: agentproto.WaitUnit, Path: "app", User: "nobody", Timeout: time.Minute}))
	want := "start the service manager of user nobody (" + manager + "): unit " + manager + " failed (result: exit-code)"
	if r.Error != want || r.Exit != 1 {
		t.Errorf("got %q (exit %d), want %q", r.Error, r.Exit, want)
	}
	wantOut := "$ systemctl status --no-pager --lines=0 " + manager + "\nran systemctl status --no-pager --lines=0 " + manager + " as \n" +
		"$ journalctl -u " + manager + " -n 20 --no-pager\nran journalctl -u " + manager + " -n 20 --no-pager as "
	if r.Output != wantOut {
		t.Errorf("output\n%s\nwant\n%s", r.Output, wantOut)
	}
}
