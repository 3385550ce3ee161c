package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// systemdHost is fakeHost with systemd on its root and these units.
func systemdHost(t *testing.T) Host {
	h := fakeHost(t)
	h.Systemd = true
	h.Units = func() []string {
		return []string{"getty@.service", "multi-user.target", "nfs-kernel-server.service", "nfs-server.service",
			"postgresql.service", "postgresql@.service", "redis-server.service", "rpcbind.socket"}
	}
	return h
}

func unit(name, text string) UnitFile { return UnitFile{Name: name, Text: text} }

const webUnit = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/usr/bin/busybox httpd -f -p 80\n"

// TestCheckUnits gives Check one mistake of a systemd declaration at a
// time and wants the whole message, with its field; "fine" cases want no
// problem at all.
func TestCheckUnits(t *testing.T) {
	host := systemdHost(t)
	systemd := func(edit func(m *Machine)) func(m *Machine) {
		return func(m *Machine) { m.Init = InitSystemd; edit(m) }
	}
	units := func(us ...UnitFile) func(m *Machine) { return systemd(func(m *Machine) { m.Units = us }) }
	enable := func(names ...string) func(m *Machine) { return systemd(func(m *Machine) { m.Enable = names }) }
	tests := []struct {
		name  string
		edit  func(m *Machine)
		field string // "" for a declaration that must pass
		want  string // the whole message after "machine server: "
	}{
		{"fast by name", func(m *Machine) { m.Init = InitFast }, "", ""},
		{"systemd", func(m *Machine) { m.Init = InitSystemd }, "", ""},
		{"init misspelled", func(m *Machine) { m.Init = "sytemd" }, "init", `init "sytemd": want "systemd", or "fast" (the default) (did you mean systemd?)`},
		{"init far from any", func(m *Machine) { m.Init = "sysvinit" }, "init", `init "sysvinit": want "systemd", or "fast" (the default)`},
		{"units on a fast machine", func(m *Machine) { m.Units = []UnitFile{unit("web.service", webUnit)} }, "units",
			`units need a systemd machine: add init = "systemd" to the machine (in fast mode, the default, vmlab's agent is PID 1 and runs no unit files; services = {...} run there)`},
		{"enable on a fast machine", func(m *Machine) { m.Init = InitFast; m.Enable = []string{"redis-server"} }, "enable",
			`enable needs a systemd machine: add init = "systemd" to the machine (in fast mode, the default, vmlab's agent is PID 1 and runs no unit files; services = {...} run there)`},
		{"enable with a misspelled init says init only", func(m *Machine) { m.Init = "systemmd"; m.Enable = []string{"redis-server"} }, "init",
			`init "systemmd": want "systemd", or "fast" (the default) (did you mean systemd?)`},
		{"units", units(unit("web.service", webUnit), unit("backup.timer", "# nightly\n[Timer]\nOnCalendar=daily\n"),
			unit("worker@.service", "[Service]\nExecStart=/bin/worker %i\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=a\n"),
			unit("nfs-server.service", "[Service]\nExecStart=/bin/true\n")), "", ""}, // overrides the root's
		{"unit without a type", units(unit("web", webUnit)), "units", `unit name "web": a unit name ends with its type (did you mean web.service?)`},
		{"unit of an unknown type", units(unit("web.srvice", webUnit)), "units",
			`unit name "web.srvice": "srvice" is no unit type (want service, socket, target, timer, path, mount, automount, swap, slice, scope, device) (did you mean service?)`},
		{"unit with a slash", units(unit("../web.service", webUnit)), "units", `unit name "../web.service": want NAME.TYPE, TYPE one of service, socket,`},
		{"unit with a space", units(unit("my web.service", webUnit)), "units", `unit name "my web.service": want NAME.TYPE`},
		{"unit with no name", units(unit(".service", webUnit)), "units", `unit name ".service": want NAME.TYPE`},
		{"unit name of 256 bytes", units(unit(strings.Repeat("a", 248)+".service", webUnit)), "units", `unit name "aaaaaaaaaaaaaaaaaaaa"...: 256 bytes, and systemd takes at most 255`},
		{"unit twice", units(unit("web.service", webUnit), unit("web.service", webUnit)), "units", "unit web.service is declared twice"},
		{"unit with empty text", units(unit("web.service", " \n")), "units",
			`unit web.service: empty text: want a unit file, such as "[Service]\nExecStart=/usr/bin/thing\n"`},
		{"unit with no section", units(unit("web.service", "# just a comment\n")), "units",
			"unit web.service: no section header: want a unit file with sections such as [Unit], [Service] and [Install]"},
		{"unit setting outside a section", units(unit("web.service", "\nExecStart=/bin/web\n[Service]\n")), "units",
			`unit web.service: line 2 "ExecStart=/bin/web" is outside any section, and systemd ignores it: put a section header ([Unit], [Service], [Install], ...) above it`},
		{"template enabled without a default instance", units(unit("worker@.service", "[Service]\nExecStart=/bin/w %i\n[Install]\nWantedBy=multi-user.target\n")), "units",
			`unit worker@.service: a template's [Install] needs DefaultInstance= to be enabled (or leave WantedBy= out and enable an instance: enable = ["worker@NAME.service"])`},
		{"WantedBy a path", units(unit("web.service", "[Service]\nExecStart=/bin/web\n[Install]\nWantedBy=../../../../../escaped\n")), "units",
			`unit web.service: line 4 "WantedBy=../../../../../escaped": WantedBy= wants unit names: unit name "../../../../../escaped": want NAME.TYPE`},
		{"RequiredBy a path among targets", units(unit("web.service", "[Service]\nExecStart=/bin/web\n[Install]\nRequiredBy=multi-user.target a/b.target\n")), "units",
			`unit web.service: line 4 "RequiredBy=multi-user.target a/b.target": RequiredBy= wants unit names: unit name "a/b.target": want NAME.TYPE`},
		{"DefaultInstance a path", units(unit("w@.service", "[Service]\nExecStart=/bin/w %i\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=../../x\n")), "units",
			`unit w@.service: line 5 "DefaultInstance=../../x": DefaultInstance= makes no unit name: unit name "w@../../x.service": want NAME.TYPE`},
		{"template not enabled", units(unit("worker@.service", "[Service]\nExecStart=/bin/w %i\n")), "", ""},
		{"vmlab's own unit", units(unit("vmlab-agent.service", webUnit)), "units",
			`unit vmlab-agent.service: names starting "vmlab-" are vmlab's own units in the guest: rename it`},
		{"unit clashing with a service", systemd(func(m *Machine) {
			m.Services = []agentproto.Service{{Name: "web", Command: "httpd"}}
			m.Units = []UnitFile{unit("web.service", webUnit)}
		}), "units", `unit web.service: services = {"web": ...} runs as web.service too: rename one, or declare it in one place`},
		{"unit and a fast service of one name", func(m *Machine) {
			m.Services = []agentproto.Service{{Name: "web", Command: "httpd"}}
		}, "", ""},
		{"service that makes no unit name", systemd(func(m *Machine) { m.Services = []agentproto.Service{{Name: "my web", Command: "httpd"}} }), "services",
			`service "my web": a systemd machine runs it as the unit "my web.service", which is not a unit name: name it with letters, digits, ':', '-', '_' and '.'`},
		{"service named like vmlab's", systemd(func(m *Machine) { m.Services = []agentproto.Service{{Name: "vmlab-boot", Command: "x"}} }), "services",
			`service "vmlab-boot": names starting "vmlab-" are vmlab's own units in the guest: rename it`},
		{"fast service of any name", func(m *Machine) { m.Services = []agentproto.Service{{Name: "my web", Command: "httpd"}} }, "", ""},
		{"enable the root's, declared and services' units", systemd(func(m *Machine) {
			m.Units = []UnitFile{unit("web.service", webUnit), unit("worker@.service", "[Service]\nExecStart=/bin/w %i\n")}
			m.Services = []agentproto.Service{{Name: "api", Command: "api"}}
			m.Enable = []string{"nfs-server", "rpcbind.socket", "getty@tty1.service", "postgresql@15-main", "web", "worker@a.service", "api.service"}
		}), "", ""},
		{"enable misspelled", enable("nfs-servr"), "enable",
			"no unit nfs-servr.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?): declare it in units, or install the package that ships it on the host (the guests' root is the host's)"},
		{"enable on an image: its units are not the host's", systemd(func(m *Machine) { m.Image = "debian:trixie"; m.Enable = []string{"redis"} }), "", ""},
		{"enable of a package's name", enable("redis"), "enable", "no unit redis.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean redis-server.service?)"},
		{"enable of a near name", enable("postgres"), "enable", "no unit postgres.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean postgresql.service?)"},
		{"enable with its type misspelled", enable("rpcbind.sockt"), "enable", "no unit rpcbind.sockt.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean rpcbind.socket?)"},
		{"enable of a package's prefix", enable("nfs"), "enable", "no unit nfs.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-kernel-server.service or nfs-server.service?)"},
		{"enable of a far name", enable("apache2"), "enable",
			"no unit apache2.service in units or in the root's /etc/systemd/system and /lib/systemd/system: declare it in units, or install"},
		{"enable a declared unit misspelled", systemd(func(m *Machine) {
			m.Units = []UnitFile{unit("web.service", webUnit)}
			m.Enable = []string{"wbe"}
		}), "enable", "no unit wbe.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean web.service?)"},
		{"enable a template", enable("getty@"), "enable", `unit getty@.service is a template: enable an instance of it, such as "getty@NAME.service"`},
		{"enable twice", enable("redis-server", "redis-server.service"), "enable", "unit redis-server.service is listed twice"},
		{"enable a bad name", enable("a/b"), "enable", `unit name "a/b.service": want NAME.TYPE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New("server")
			tt.edit(&m)
			ps := m.Check(host)
			if tt.field == "" {
				if len(ps) > 0 {
					t.Fatalf("got %v, want no problem", Join(ps))
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("got %d problems (%v), want 1", len(ps), Join(ps))
			}
			if ps[0].Field != tt.field || !strings.HasPrefix(ps[0].Error(), "machine server: "+tt.want) {
				t.Errorf("got field %q: %v\nwant field %q: machine server: %s...", ps[0].Field, ps[0], tt.field, tt.want)
			}
		})
	}
}

// TestCheckSystemdHost checks init and enable against what the host says
// of its root: no systemd refuses init = "systemd" (and then enable is
// not looked up: every name would be missing); a host that cannot list
// its units lets any valid name through.
func TestCheckSystemdHost(t *testing.T) {
	m := New("server")
	m.Init, m.Enable = InitSystemd, []string{"nfs-servr"}
	bare := fakeHost(t)
	ps := m.Check(bare)
	want := `machine server: init = "systemd": the machines' root (the host's) has no /lib/systemd/systemd: install systemd on the host (apt-get install systemd), or leave init out for vmlab's fast mode`
	if len(ps) != 1 || ps[0].Field != "init" || ps[0].Error() != want {
		t.Errorf("root without systemd: got %v, want one problem with init:\n%s", Join(ps), want)
	}
	unlisted := bare
	unlisted.Systemd = true
	if ps := m.Check(unlisted); len(ps) > 0 {
		t.Errorf("host with no unit list: got %v, want no problem", Join(ps))
	}
	m.Enable = []string{"getty@"}
	if ps := m.Check(unlisted); len(ps) != 1 || ps[0].Field != "enable" {
		t.Errorf("host with no unit list, enable of a template: got %v, want one problem with enable", Join(ps))
	}
}

// TestCheckEveryUnitProblem wants all of a systemd declaration's problems
// at once, each with its field.
func TestCheckEveryUnitProblem(t *testing.T) {
	m := New("server")
	m.Init = InitSystemd
	m.Services = []agentproto.Service{{Name: "web", Command: "httpd"}}
	m.Units = []UnitFile{unit("web.service", webUnit), unit("db", "")}
	m.Enable = []string{"nfs-servr", "getty@"}
	var got []string
	for _, p := range m.Check(systemdHost(t)) {
		got = append(got, p.Field)
	}
	want := "units units units enable enable" // web.service twice, db's name, db's text, two enables
	if strings.Join(got, " ") != want {
		t.Errorf("got problems with %s, want %s", strings.Join(got, " "), want)
	}
}

func TestDeclaredUnits(t *testing.T) {
	m := New("server")
	m.Services = []agentproto.Service{{Name: "api", Command: "api"}}
	m.Units = []UnitFile{unit("web.service", webUnit)}
	if got := m.DeclaredUnits(); got != nil {
		t.Errorf("fast machine: got %q, want none (it runs no units)", got)
	}
	m.Init = InitSystemd
	if got, want := strings.Join(m.DeclaredUnits(), " "), "web.service api.service"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestSystemUnits: the root's units are those of every directory systemd
// reads them from, /usr/local's included (a locally installed unit may be
// enabled), and not /run's, which is the guest's.
func TestSystemUnits(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"etc/systemd/system/admin.service", "usr/local/lib/systemd/system/local.service",
		"lib/systemd/system/dist.service", "usr/lib/systemd/system/dist.service", "usr/lib/systemd/system/usr.socket",
		"lib/systemd/system/README", "run/systemd/system/transient.service"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte("[Unit]\n"), 0o644)
	}
	want := []string{"admin.service", "dist.service", "local.service", "usr.socket"}
	if got := SystemUnits(root); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	host := systemdHost(t)
	host.Units = func() []string { return SystemUnits(root) }
	m := New("server")
	m.Init, m.Enable = InitSystemd, []string{"local"}
	if ps := m.Check(host); len(ps) > 0 {
		t.Errorf("enable a unit of /usr/local/lib/systemd/system: %v", Join(ps))
	}
}

// TestUnitDirs: the root's unit directories are agentproto's, which the
// agent searches, but the guest's /run.
func TestUnitDirs(t *testing.T) {
	want := slices.DeleteFunc(slices.Clone(agentproto.UnitDirs), func(d string) bool { return d == agentproto.RunUnitDir })
	got := slices.Clone(UnitDirs)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("spec.UnitDirs %v, agentproto.UnitDirs without %s %v", UnitDirs, agentproto.RunUnitDir, want)
	}
}
