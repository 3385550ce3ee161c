package machine_test

// Tests of the unit methods against the fake QEMU, whose agent runs the
// commands on the host: a fake systemctl stands in for the guest's, logs
// who called it with what, and answers as systemd 252 does for a few
// units.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// fakeSystemctl is the fake's script, systemctl and loginctl by the name
// it is called; %[1]s is its log, %[2]s the file that says the user
// manager has started.
const fakeSystemctl = `#!/bin/sh
echo "$(id -un) XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR-} ${0##*/} $*" >>%[1]s
case "$*" in
"list-jobs"|"--user list-jobs") echo "No jobs running." ;;
"is-active --quiet user@0.service") exit 3 ;;
"start user@0.service") echo "A dependency job for user@0.service failed." >&2; exit 1 ;;
"is-active --quiet user@"*) test -e %[2]s ;;
"start systemd-logind.service"|"enable-linger "*) ;;
"start user@"*) touch %[2]s ;;
"start web.service"|"stop web.service"|"--user start web.service") ;;
"start broken.service")
	echo "Job for broken.service failed because the control process exited with error code." >&2
	exit 1 ;;
"--no-pager show web.service"|"--user --no-pager show web.service")
	printf 'Id=web.service\nDescription=a = b\nLoadState=loaded\nActiveState=active\nSubState=running\nResult=success\n' ;;
"--no-pager show broken.service")
	printf 'Id=broken.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\n' ;;
"--no-pager show nosuch.service")
	printf 'Id=nosuch.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n' ;;
"--no-pager show web.service --property=LoadState --property=ActiveState")
	printf 'ActiveState=active\nLoadState=loaded\n' ;;
"--no-pager show web.service --property=LoadState --property=Bogus") echo LoadState=loaded ;;
"--no-pager show nosuch.service --property=LoadState --property=LoadState") echo LoadState=not-found ;;
"--no-pager show nosuch.service --property=LoadState --property=ActiveState")
	printf 'ActiveState=inactive\nLoadState=not-found\n' ;;
"--no-pager show bad unit") echo 'Failed to get properties: Unit name bad unit is not valid.' >&2; exit 1 ;;
*) echo "fake systemctl: unexpected $*" >&2; exit 64 ;;
esac
`

// systemdFake returns a fake machine whose init is systemd, with the fake
// systemctl, and the fake's log.
func systemdFake(t *testing.T) (*machine.Machine, func() []string) {
	t.Helper()
	// nobody runs the fake too.
	dir, err := os.MkdirTemp("", "vmlab-systemctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log, started, program := filepath.Join(dir, "log"), filepath.Join(dir, "started"), filepath.Join(dir, "systemctl")
	if err := os.WriteFile(program, fmt.Appendf(nil, fakeSystemctl, log, started), 0o755); err != nil {
		t.Fatal(err)
	}
	// The log is made here, writable by nobody, and emptied after each
	// read.
	if err := os.WriteFile(log, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(log, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Symlink(program, filepath.Join(dir, "loginctl")); err != nil {
		t.Fatal(err)
	}
	machine.SetUnitPrograms(t, program, filepath.Join(dir, "loginctl"))
	m := fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Init: spec.InitSystemd}})
	return m, func() []string {
		b, _ := os.ReadFile(log)
		os.Truncate(log, 0)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

func TestSystemctl(t *testing.T) {
	m, calls := systemdFake(t)
	ctx := t.Context()
	tests := []struct {
		name, q, user string
		wantStatus    int
		wantStdout    string
		wantCalls     []string
	}{
		{"system manager", "list-jobs", "", 0, "No jobs running.\n",
			[]string{"root XDG_RUNTIME_DIR= systemctl list-jobs"}},
		{"a failing job is a status, not an error", "start broken.service", "", 1, "",
			[]string{"root XDG_RUNTIME_DIR= systemctl start broken.service"}},
		// The user's manager is started first, as root, with logind and
		// lingering; then systemctl --user runs as the user with the
		// manager's runtime directory.
		{"user manager, first call", "list-jobs", "nobody", 0, "No jobs running.\n", []string{
			"root XDG_RUNTIME_DIR= systemctl is-active --quiet user@65534.service",
			"root XDG_RUNTIME_DIR= systemctl start systemd-logind.service",
			"root XDG_RUNTIME_DIR= loginctl enable-linger nobody",
			"root XDG_RUNTIME_DIR= systemctl start user@65534.service",
			"nobody XDG_RUNTIME_DIR=/run/user/65534 systemctl --user list-jobs"}},
		{"user manager already active", "list-jobs", "nobody", 0, "No jobs running.\n", []string{
			"root XDG_RUNTIME_DIR= systemctl is-active --quiet user@65534.service",
			"nobody XDG_RUNTIME_DIR=/run/user/65534 systemctl --user list-jobs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := m.Systemctl(ctx, tt.q, tt.user)
			if err != nil || res.Status != tt.wantStatus || res.Stdout != tt.wantStdout {
				t.Errorf("got %d %q, %v; want %d %q", res.Status, res.Stdout, err, tt.wantStatus, tt.wantStdout)
			}
			if got := calls(); strings.Join(got, "\n") != strings.Join(tt.wantCalls, "\n") {
				t.Errorf("systemctl ran as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.wantCalls, "\n"))
			}
		})
	}
	t.Run("broken job's message", func(t *testing.T) {
		res, err := m.StartJob(ctx, "broken.service", "")
		if err != nil || res.Status != 1 || !strings.Contains(res.Stderr, "Job for broken.service failed") {
			t.Errorf("got %+v, %v; want status 1 with systemctl's message on stderr", res, err)
		}
	})
	t.Run("user manager that does not start", func(t *testing.T) {
		_, err := m.Systemctl(ctx, "list-jobs", "root")
		want := "fake: start the systemd manager of user root (user@0.service): exited with status 1\n--- stderr ---\nA dependency job for user@0.service failed."
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		_, err := m.Systemctl(ctx, "list-jobs", "nosuchuser")
		want := `fake: start the systemd manager of user nosuchuser: the guest has no user nosuchuser: declare it with users = ["nosuchuser"]`
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "no such user") {
			t.Errorf("got %v, want %q and id's message", err, want)
		}
	})
}

func TestUnitInfo(t *testing.T) {
	m, _ := systemdFake(t)
	ctx := t.Context()
	info, err := m.GetUnitInfo(ctx, "web.service", "")
	if err != nil || info["ActiveState"] != "active" || info["Description"] != "a = b" || len(info) != 6 {
		t.Errorf("got %v, %v; want web.service's six properties, a value with '=' kept whole", info, err)
	}
	info, err = m.GetUnitInfo(ctx, "web.service", "nobody")
	if err != nil || info["Id"] != "web.service" {
		t.Errorf("user unit: got %v, %v", info, err)
	}
	errTests := []struct{ name, unit, want string }{
		{"unit systemd cannot find", "nosuch.service",
			"fake: get the properties of unit nosuch.service: systemd has no unit nosuch.service (LoadState=not-found)"},
		{"systemctl fails", "bad unit",
			"fake: get the properties of unit bad unit: systemctl --no-pager show 'bad unit' exited with status 1\n--- stderr ---\nFailed to get properties"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.GetUnitInfo(ctx, tt.unit, ""); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestUnitProperty(t *testing.T) {
	m, _ := systemdFake(t)
	tests := []struct {
		name, unit, property, want, wantErr string
	}{
		{"one property", "web.service", "ActiveState", "active", ""},
		{"LoadState of a unit systemd cannot find", "nosuch.service", "LoadState", "not-found", ""},
		{"another property of one it cannot find", "nosuch.service", "ActiveState", "",
			"fake: get property ActiveState of unit nosuch.service: systemd has no unit nosuch.service"},
		{"property systemd does not have", "web.service", "Bogus", "",
			`fake: get property Bogus of unit web.service: systemd has no property "Bogus"`},
		{"not a property name", "web.service", "A=B", "",
			"fake: get property A=B of unit web.service: want a property name such as ActiveState"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.GetUnitProperty(t.Context(), tt.unit, tt.property, "")
			switch {
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("got %q, %v; want error %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestRequireUnitState(t *testing.T) {
	m, _ := systemdFake(t)
	tests := []struct{ unit, state, wantErr string }{
		{"web.service", "active", ""},
		{"broken.service", "failed", ""},
		{"broken.service", "active", "fake: require unit broken.service to be active: it is failed (SubState=failed, Result=exit-code)"},
		{"web.service", "inactive", "fake: require unit web.service to be inactive: it is active (SubState=running, Result=success)"},
		{"nosuch.service", "inactive", "fake: get the properties of unit nosuch.service: systemd has no unit"},
	}
	for _, tt := range tests {
		err := m.RequireUnitState(t.Context(), tt.unit, tt.state, "")
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)) {
			t.Errorf("RequireUnitState(%s, %s): got %v, want %q", tt.unit, tt.state, err, tt.wantErr)
		}
	}
}

// TestUnitMethodsNeedSystemd: on a fast-mode machine every unit method
// (and wait_for_unit with a user) is refused at once, saying how to
// declare a systemd machine, and boots nothing.
func TestUnitMethodsNeedSystemd(t *testing.T) {
	m := fakeMachine(t, "serve")
	ctx := t.Context()
	calls := map[string]func() error{
		"Systemctl":        func() error { _, err := m.Systemctl(ctx, "list-jobs", ""); return err },
		"StartJob":         func() error { _, err := m.StartJob(ctx, "web", ""); return err },
		"StopJob":          func() error { _, err := m.StopJob(ctx, "web", "alice"); return err },
		"GetUnitInfo":      func() error { _, err := m.GetUnitInfo(ctx, "web", ""); return err },
		"GetUnitProperty":  func() error { _, err := m.GetUnitProperty(ctx, "web", "ActiveState", ""); return err },
		"RequireUnitState": func() error { return m.RequireUnitState(ctx, "web", "active", "") },
		"WaitForUnit":      func() error { return m.WaitForUnit(ctx, "web", "alice", 0) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, machine.ErrNoSystemd) || !strings.HasPrefix(err.Error(), "fake: ") ||
			!strings.HasSuffix(err.Error(), `: the machine's init is not systemd: declare it with init = "systemd" (in Go, the option vmlab.Systemd())`) {
			t.Errorf("%s: got %v, want an error wrapping ErrNoSystemd", name, err)
		}
	}
	if m.QEMUPid() != 0 {
		t.Error("a refused unit method booted the machine")
	}
}

// waitEcho is the fake agent of mode waitecho: each wait is answered with
// an error that says what the host asked for, the start of a user's
// manager with UID 1000 (or, for the user "slow", with its timeout
// passed), any other request with success.
func waitEcho(c net.Conn, hello agentproto.Hello, systemd bool) {
	w, r := agentproto.NewWriter(c), agentproto.NewReader(c)
	w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
	manager := false                 // a user's manager was started
	var managerTimeout time.Duration // the timeout of its start
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		var req agentproto.Request
		if f.Type != agentproto.TRequest || agentproto.Decode(f, &req) != nil {
			continue
		}
		var res agentproto.Result
		switch {
		case req.Wait != nil:
			res.Error = fmt.Sprintf("wait %s path=%q user=%q manager=%v", req.Wait.Kind, req.Wait.Path, req.Wait.User, manager)
			if manager {
				res.Error += fmt.Sprintf(" (started within %v; the wait within what was left: %v)",
					managerTimeout, req.Wait.Timeout > 0 && req.Wait.Timeout <= managerTimeout)
			}
		case req.Exec != nil && strings.Contains(req.Exec.Command, "id -u -- slow"):
			res.TimedOut = true
		case req.Exec != nil && strings.Contains(req.Exec.Command, "user@"):
			managerTimeout = req.Exec.Timeout
			// The start of a user's manager: its UID, as if it were up.
			w.WriteFrame(agentproto.TStdout, f.Stream, []byte("1000\n"))
			manager = true
		}
		w.WriteFrame(agentproto.TResult, f.Stream, agentproto.Encode(res))
		if systemd && req.Op == agentproto.OpServices {
			// The handover: systemd's agent says hello.
			w.WriteFrame(agentproto.THello, 0, agentproto.Encode(hello))
		}
	}
}

// TestWaitForUnitRequest: a systemd machine asks the agent for the unit as
// written, with its user, whose manager it starts first; a fast-mode
// machine for the declared service the name stands for, or for every
// service when it names a system target.
func TestWaitForUnitRequest(t *testing.T) {
	tests := []struct {
		name       string
		init       string
		unit, user string
		want       string
	}{
		{"systemd unit as written", spec.InitSystemd, "nfs-server", "", `fake: wait for unit nfs-server: wait unit path="nfs-server" user="" manager=false`},
		{"systemd target", spec.InitSystemd, "multi-user.target", "", `wait unit path="multi-user.target" user=""`},
		{"systemd user unit", spec.InitSystemd, "pipewire.service", "alice",
			`fake: wait for unit pipewire.service of user alice: wait unit path="pipewire.service" user="alice" manager=true`},
		{"fast-mode service", "", "web.service", "", `fake: wait for service web.service: wait unit path="web" user=""`},
		{"fast-mode system target", "", "multi-user.target", "", `wait unit path="" user=""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fakeMachineConfig(t, "waitecho", machine.Config{Machine: spec.Machine{Init: tt.init}})
			err := m.WaitForUnit(t.Context(), tt.unit, tt.user, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestWaitForUnitUserTimeout: wait_for_unit(user=..., timeout=T) starts
// the user's manager within T and waits for the unit within what is left,
// and a manager that does not start within T is that wait's timeout.
func TestWaitForUnitUserTimeout(t *testing.T) {
	m := fakeMachineConfig(t, "waitecho", machine.Config{Machine: spec.Machine{Init: spec.InitSystemd}})
	err := m.WaitForUnit(t.Context(), "pipewire.service", "alice", 3*time.Second)
	want := `manager=true (started within 3s; the wait within what was left: true)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want it to contain %q", err, want)
	}
	err = m.WaitForUnit(t.Context(), "pipewire.service", "slow", 2*time.Second)
	var te *machine.TimeoutError
	want = "fake: wait for unit pipewire.service of user slow (starting the manager of user slow): timed out after 2s"
	if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want a *TimeoutError %q", err, want)
	}
}
