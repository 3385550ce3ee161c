package script

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/spec"
)

// unitsHost makes Load check against a root whose unit files are a few
// known ones and whose /etc/passwd has root and nobody.
func unitsHost(t *testing.T) {
	t.Helper()
	fixtureHost(t)
	fixture := checkHost
	checkHost = func() spec.Host {
		h := fixture()
		h.Units = func() []string {
			return []string{"getty@.service", "multi-user.target", "nfs-server.service", "ssh.service"}
		}
		return h
	}
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/bash\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := rootPasswd
	rootPasswd = passwd
	t.Cleanup(func() { rootPasswd = old })
}

// The machines of the unit checks: server's init is systemd, fast's is not.
const unitsDecl = "server = machine(init = 'systemd', users = ['alice'], services = {'web': service('true')}, " +
	"units = {'backup.timer': '[Timer]\\nOnCalendar=daily\\n'}, enable = ['ssh'], " +
	"files = {'/etc/systemd/system/own.service': '[Service]\\nExecStart=/bin/true\\n', '/etc/systemd/other.service': ''})\n" +
	"fast = machine(services = {'web': service('true')})"

// TestUnitCallErrors: Load refuses a unit method's call the file says
// enough about, at the argument at fault.
func TestUnitCallErrors(t *testing.T) {
	unitsHost(t)
	const install = ": declare it in units, or install the package that ships it on the host (the guests' root is the host's); a unit the test makes as it runs passes when another of the file's strings names it"
	tests := []struct{ name, call, want string }{
		{"unit method in fast mode", "fast.systemctl('list-jobs')",
			`call.star:4:8: systemctl(): machine fast has no systemd (its init is fast mode): declare it with machine(init = "systemd")`},
		{"start_job in fast mode", "fast.start_job('web')",
			`call.star:4:8: start_job(): machine fast has no systemd (its init is fast mode): declare it with machine(init = "systemd")`},
		{"user unit in fast mode", "fast.wait_for_unit('web', user = 'alice')",
			`call.star:4:36: wait_for_unit(user = ...): machine fast has no systemd, so no user units (its init is fast mode): declare it with machine(init = "systemd")`},
		{"fast mode's services still checked", "fast.wait_for_unit('wbe')", `call.star:4:22: machine fast declares no service "wbe" (did you mean web?)`},
		{"misspelled unit", "server.wait_for_unit('nfs-sever')",
			"call.star:4:24: machine server: no unit nfs-sever.service in units, services or the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?)" + install},
		{"unit nowhere", "server.start_job(jobname = 'zzz-nothing.timer')",
			"call.star:4:30: machine server: no unit zzz-nothing.timer in units, services or the root's /etc/systemd/system and /lib/systemd/system" + install},
		{"require_unit_state's unit", "server.require_unit_state('bakup.timer', 'failed')",
			"call.star:4:29: machine server: no unit bakup.timer in units, services or the root's /etc/systemd/system and /lib/systemd/system (did you mean backup.timer?)" + install},
		{"unit with its type misspelled", "server.start_job('nfs-server.servic')",
			"call.star:4:20: machine server: no unit nfs-server.servic.service in units, services or the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?)" + install},
		{"unit by its package's prefix", "server.wait_for_unit('nfs')",
			"call.star:4:24: machine server: no unit nfs.service in units, services or the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?)" + install},
		{"a file outside the unit directories", "server.start_job('other.service')",
			"call.star:4:20: machine server: no unit other.service in units, services or the root's /etc/systemd/system and /lib/systemd/system" + install},
		// The unit arguments of unit methods make no unit: a typo named
		// twice is still refused, at each.
		{"misspelled unit named twice", "server.wait_for_unit('nfs-sever')\n  server.require_unit_state('nfs-sever.service', 'active')",
			"call.star:5:29: machine server: no unit nfs-sever.service in units, services or the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?)" + install},
		{"a string naming another unit that starts alike", "server.succeed('systemd-run --unit=probe-old true')\n  server.wait_for_unit('probe')",
			"call.star:5:24: machine server: no unit probe.service in units, services or the root's /etc/systemd/system and /lib/systemd/system" + install},
		{"a timeout where user goes, as before user= came second", "server.wait_for_unit('ssh', 120)",
			"call.star:4:31: wait_for_unit(): user wants a user name, or None for the system's units, got int (a timeout goes by name: timeout = 120)"},
		{"user nowhere", "server.systemctl('list-jobs', user = 'bob')",
			`call.star:4:40: machine server has no user "bob": declare it with machine(users = ["bob"])`},
		{"misspelled user, positional", "server.get_unit_property('x', 'ActiveState', 'alcie')",
			`call.star:4:48: machine server has no user "alcie" (did you mean alice?): declare it with machine(users = ["alcie"])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadCallOn(t, unitsDecl, tt.call)
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), "testdata/"+tt.want) {
				t.Errorf("%s: got %v, want %q", tt.call, err, tt.want)
			}
		})
	}
}

// TestUnitCallsAccepted: the units and users a systemd machine has pass,
// and so do those Load cannot check.
func TestUnitCallsAccepted(t *testing.T) {
	unitsHost(t)
	calls := []string{
		"server.wait_for_unit('nfs-server')",                   // the root's
		"server.wait_for_unit('multi-user.target')",            // a target of the root's
		"server.start_job('getty@tty1')",                       // an instance of the root's template
		"server.require_unit_state('web.service', 'inactive')", // a declared service, rendered as a unit
		"server.wait_for_unit('backup.timer')",                 // declared in units
		"server.wait_for_unit('ssh')",                          // enabled by name
		"server.start_job('own')",                              // a unit file in files
		"server.wait_for_unit('dev-vda.device')",               // systemd makes these, no file names them
		"server.start_job('nfs-*')",                            // a pattern
		"server.stop_job('zzz-nothing')",                       // stopping what is not there does no harm
		"server.get_unit_info('zzz-nothing')",                  // its LoadState may be the question
		"server.wait_for_unit('pipewire', user = 'alice')",     // a user unit: not in the root's system units
		"server.systemctl('list-jobs', 'nobody')",              // a user of the root's /etc/passwd
		"server.systemctl('list-jobs', user = None)",
		"server.wait_for_unit(str(1))", // not a literal
		// Units the test makes as it runs, named by another string.
		"server.succeed('systemd-run --unit=probe sleep 600')\n  server.wait_for_unit('probe')",
		"server.succeed('printf \"[Service]\\nExecStart=/bin/true\\n\" >/etc/systemd/system/made.service')\n  server.start_job('made')",
		"server.succeed('systemd-run --unit=tmpl@1 true')\n  server.require_unit_state('tmpl@1.service', 'inactive')",
		"fast.wait_for_unit('web', user = None)",
		"fast.wait_for_unit('multi-user.target')",
	}
	for _, call := range calls {
		if err := loadCallOn(t, unitsDecl, call); err != nil {
			t.Errorf("%s: got %v, want no error", call, err)
		}
	}
}

// TestUnitCallRefusedAtRunTime: a unit method on a fast-mode machine that
// Load cannot see (a function's parameter) is refused when it runs, in
// Load's words, before it boots anything (the run has no lab: booting
// would panic).
func TestUnitCallRefusedAtRunTime(t *testing.T) {
	unitsHost(t)
	tests := []struct{ call, want string }{
		{"(lambda m: m.get_unit_info('web'))(fast)",
			`get_unit_info(): machine fast has no systemd (its init is fast mode): declare it with machine(init = "systemd")`},
		{"(lambda m: m.wait_for_unit('web', user = 'alice'))(fast)",
			`wait_for_unit(user = ...): machine fast has no systemd, so no user units (its init is fast mode): declare it with machine(init = "systemd")`},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			f, err := Load("testdata/call.star", []byte(unitsDecl+"\ndef test():\n  "+tt.call+"\n"))
			if err != nil {
				t.Fatalf("Load: got %v, want no error: the machine is not known before the call", err)
			}
			r := &run{ctx: t.Context(), file: f, test: "test", rep: &events{}}
			thread := &starlark.Thread{Name: "test"}
			thread.SetLocal(runKey, r)
			_, err = starlark.Call(thread, f.globals["test"], nil, nil)
			if msg, _ := splitError(err); err == nil || msg != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMentioned(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"systemd-run --unit=probe sleep 600", true},
		{"cat >/etc/systemd/system/probe.service", true},
		{"probe", true},
		{"systemd-run --unit=probe@1 true", true},
		{"systemctl start probe-old", false},
		{"systemctl start xprobe.service", false},
		{"old_probe", false},
	}
	for _, tt := range tests {
		if got := mentioned("probe", []string{tt.s}); got != tt.want {
			t.Errorf("mentioned(probe, %q): got %v, want %v", tt.s, got, tt.want)
		}
	}
}
