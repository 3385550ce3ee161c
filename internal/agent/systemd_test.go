package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestSpecAgrees: the agent keeps its own copies of spec's constants (it
// does not import spec, which pulls the kernel package into the guest's
// binary); they must not drift. Unit names and directories are
// agentproto's, shared by both.
func TestSpecAgrees(t *testing.T) {
	if systemdPath != spec.SystemdPath {
		t.Errorf("systemdPath %q, spec.SystemdPath %q", systemdPath, spec.SystemdPath)
	}
	if initSystemd != spec.InitSystemd {
		t.Errorf("initSystemd %q, spec.InitSystemd %q", initSystemd, spec.InitSystemd)
	}
	for _, d := range spec.UnitDirs {
		if !slices.Contains(unitSearchDirs, "/"+d) {
			t.Errorf("spec.UnitDirs has %s, which the agent does not search (%v)", d, unitSearchDirs)
		}
	}
}

// TestCheckSystemd: a root without systemd fails the boot with an error
// that names the path and what to do.
func TestCheckSystemd(t *testing.T) {
	root := t.TempDir()
	err := checkSystemd(root)
	if err == nil || !strings.Contains(err.Error(), systemdPath) || !strings.Contains(err.Error(), "install systemd") {
		t.Errorf("root without systemd: got %v, want an error naming %s and what to do", err, systemdPath)
	}
	p := filepath.Join(root, systemdPath)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("#!/bin/true\n"), 0o755)
	if err := checkSystemd(root); err != nil {
		t.Errorf("root with systemd: %v", err)
	}
}

// TestWriteRunUnits checks what a systemd guest's /run holds before
// systemd starts: the boot target pulling the agent, the agent's unit,
// vmlab's masks, every generator masked and the settings.
func TestWriteRunUnits(t *testing.T) {
	root := t.TempDir()
	gen := filepath.Join(root, "lib/systemd/system-generators")
	os.MkdirAll(gen, 0o755)
	for _, g := range []string{"systemd-fstab-generator", "nfs-server-generator"} {
		os.WriteFile(filepath.Join(gen, g), nil, 0o755)
	}
	os.MkdirAll(filepath.Join(root, "lib/systemd/system"), 0o755)
	for _, u := range []string{"multi-user.target", "network.target", "network-online.target"} {
		os.WriteFile(filepath.Join(root, "lib/systemd/system", u), []byte("[Unit]\n"), 0o644)
	}
	if err := writeRunUnits(root, false); err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if got, err := os.Readlink(filepath.Join(root, "run/systemd/system", bootTarget+".wants", agentUnit)); err != nil || got != "/run/systemd/system/"+agentUnit {
		t.Errorf("%s does not pull the agent: %q, %v", bootTarget, got, err)
	}
	agent := read("run/systemd/system/" + agentUnit)
	for _, want := range []string{"DefaultDependencies=no", unitEnv + "=1", "ExecStart=/run/vmlab/agent", "IgnoreSIGPIPE=no",
		"FailureAction=poweroff-force", "SuccessAction=poweroff-force"} {
		if !strings.Contains(agent, want) {
			t.Errorf("%s lacks %q:\n%s", agentUnit, want, agent)
		}
	}
	// A second agent would greet a host that is mid-session.
	if strings.Contains(agent, "Restart=") {
		t.Errorf("%s restarts the agent:\n%s", agentUnit, agent)
	}
	if got := read("run/systemd/journald.conf.d/vmlab.conf"); !strings.Contains(got, "ForwardToConsole=yes") {
		t.Errorf("journald settings: %q", got)
	}
	if got := read("run/systemd/system.conf.d/vmlab.conf"); !strings.Contains(got, "DefaultTimeoutStopSec=") {
		t.Errorf("manager settings: %q", got)
	}
	for _, rel := range []string{"run/systemd/system/systemd-udev-trigger.service", "run/systemd/system/getty.target",
		"run/systemd/system-generators/systemd-fstab-generator", "run/systemd/system-generators/nfs-server-generator"} {
		if target, err := os.Readlink(filepath.Join(root, rel)); err != nil || target != "/dev/null" {
			t.Errorf("%s: got link to %q, %v; want a mask (link to /dev/null)", rel, target, err)
		}
	}
	// default.target is multi-user.target, not the root's graphical.target.
	if target, err := os.Readlink(filepath.Join(root, unitDir, defaultTarget)); err != nil || target != "/lib/systemd/system/multi-user.target" {
		t.Errorf("default.target: got link to %q, %v; want /lib/systemd/system/multi-user.target", target, err)
	}
	for _, u := range []string{"network.target", "network-online.target"} {
		if target, err := os.Readlink(filepath.Join(root, unitDir, "multi-user.target.wants", u)); err != nil || target != "/lib/systemd/system/"+u {
			t.Errorf("multi-user.target.wants/%s: got link to %q, %v; want /lib/systemd/system/%s", u, target, err, u)
		}
	}
	// A declared default.target replaces the link, and is not written
	// through it into the root's multi-user.target.
	if _, err := installUnits(root, nil, []agentproto.UnitFile{{Name: defaultTarget, Text: "[Unit]\nDescription=mine\n"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := read("run/systemd/system/" + defaultTarget); got != "[Unit]\nDescription=mine\n" {
		t.Errorf("declared default.target: %q", got)
	}
	if got := read("lib/systemd/system/multi-user.target"); got != "[Unit]\n" {
		t.Errorf("the root's multi-user.target was written: %q", got)
	}
	// Writing again (a second agent start) changes nothing and fails not.
	if err := writeRunUnits(root, false); err != nil {
		t.Errorf("second write: %v", err)
	}
}

// TestInstallUnits checks OpServices' files in a systemd guest: declared
// units and services land in /run/systemd/system and are enabled by their
// [Install] section, Enable links the root's units (an instance to its
// template) into multi-user.target.wants, naming a unit vmlab masks
// unmasks it, and bad names or unknown units are refused by name.
func TestInstallUnits(t *testing.T) {
	all := []string{"getty@.service", "systemd-udevd.service", "dbus.service"}
	setup := func(t *testing.T) string {
		root := t.TempDir()
		lib := filepath.Join(root, "lib/systemd/system")
		os.MkdirAll(lib, 0o755)
		for _, u := range []string{"nfs-server.service", "getty@.service", "systemd-udevd.service"} {
			os.WriteFile(filepath.Join(lib, u), []byte("[Service]\n"), 0o644)
		}
		for _, m := range all {
			mask(filepath.Join(root, unitDir, m))
		}
		return root
	}
	web := agentproto.UnitFile{Name: "web.service", Text: "[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\nRequiredBy=app.target\n"}
	tmpl := agentproto.UnitFile{Name: "worker@.service", Text: "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=one\n"}
	plain := agentproto.UnitFile{Name: "plain.service", Text: "[Service]\nExecStart=/bin/true\n"}
	tests := []struct {
		name     string
		services []agentproto.Service
		units    []agentproto.UnitFile
		enable   []string
		links    map[string]string // link under unitDir -> its target
		files    []string          // files under unitDir
		masks    []string          // still masked
		changed  bool
		err      string
	}{
		{name: "nothing", masks: all},
		{name: "declared units", units: []agentproto.UnitFile{web, tmpl, plain}, changed: true,
			files: []string{"web.service", "worker@.service", "plain.service"},
			links: map[string]string{"multi-user.target.wants/web.service": "/run/systemd/system/web.service",
				"app.target.requires/web.service":            "/run/systemd/system/web.service",
				"multi-user.target.wants/worker@one.service": "/run/systemd/system/worker@.service"},
			masks: all},
		{name: "service", services: []agentproto.Service{{Name: "api", Command: "sleep 1000"}}, changed: true,
			files: []string{"api.service"},
			links: map[string]string{"multi-user.target.wants/api.service": "/run/systemd/system/api.service"},
			masks: all},
		{name: "enable the root's units", enable: []string{"nfs-server", "getty@tty1.service", "systemd-udevd.service"}, changed: true,
			links: map[string]string{"multi-user.target.wants/nfs-server.service": "/lib/systemd/system/nfs-server.service",
				"multi-user.target.wants/getty@tty1.service":    "/lib/systemd/system/getty@.service",
				"multi-user.target.wants/systemd-udevd.service": "/lib/systemd/system/systemd-udevd.service"},
			masks: []string{"dbus.service"}},
		{name: "a declared unit replaces a mask", units: []agentproto.UnitFile{{Name: "dbus.service", Text: "[Service]\n"}},
			changed: true, files: []string{"dbus.service"}, masks: []string{"getty@.service", "systemd-udevd.service"}},
		{name: "unknown unit", enable: []string{"nosuch"}, err: "enable unit nosuch.service: no such unit"},
		{name: "bad unit name", units: []agentproto.UnitFile{{Name: "../x.service"}}, err: `install unit: unit name "../x.service": want NAME.TYPE`},
		{name: "no type", units: []agentproto.UnitFile{{Name: "web"}}, err: `install unit: unit name "web": a unit name ends with its type`},
		// The host's check and the agent's are one: what spec refuses at
		// load, the agent does not install either.
		{name: "space in a name", units: []agentproto.UnitFile{{Name: "my web.service", Text: "[Service]\n"}}, err: `install unit: unit name "my web.service": want NAME.TYPE`},
		{name: "space in an enabled name", enable: []string{"my web"}, err: `enable unit: unit name "my web.service": want NAME.TYPE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := setup(t)
			changed, err := installUnits(root, tt.services, tt.units, tt.enable)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("got %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.changed {
				t.Errorf("changed: got %v, want %v", changed, tt.changed)
			}
			dir := filepath.Join(root, unitDir)
			for link, want := range tt.links {
				if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != want {
					t.Errorf("%s: got link to %q, %v; want %q", link, got, err, want)
				}
			}
			for _, f := range tt.files {
				if fi, err := os.Lstat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: got %v, %v; want a unit file", f, fi, err)
				}
			}
			for _, m := range all {
				target, _ := os.Readlink(filepath.Join(dir, m))
				if masked, want := target == "/dev/null", slices.Contains(tt.masks, m); masked != want {
					t.Errorf("%s: masked %v, want %v", m, masked, want)
				}
			}
		})
	}
}

// TestHideStaticWants: of the distribution's static links under /usr, the
// guest does not see those that would start dbus and logind at boot (they
// start on demand, for a user's units); the others stay.
func TestHideStaticWants(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("makes whiteouts (character devices): needs root")
	}
	usr, hide := filepath.Join(t.TempDir(), "usr"), filepath.Join(t.TempDir(), "hide")
	wants := filepath.Join(usr, "lib/systemd/system/multi-user.target.wants")
	os.MkdirAll(wants, 0o755)
	for _, u := range []string{"dbus.service", "systemd-logind.service", "getty.target"} {
		os.Symlink("../"+u, filepath.Join(wants, u))
	}
	if hid, err := hideHostUnits(usr, "/usr", hide); err != nil || !hid {
		t.Fatalf("hideHostUnits: %v, %v", hid, err)
	}
	for u, want := range map[string]bool{"dbus.service": true, "systemd-logind.service": true, "getty.target": false} {
		var st unix.Stat_t
		err := unix.Lstat(filepath.Join(hide, "lib/systemd/system/multi-user.target.wants", u), &st)
		isWhiteout := err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
		if isWhiteout != want {
			t.Errorf("%s: whiteout %v, want %v", u, isWhiteout, want)
		}
	}
	// A share with nothing to hide gets no extra layer.
	if hid, err := hideHostUnits(usr, "/opt", filepath.Join(t.TempDir(), "none")); err != nil || hid {
		t.Errorf("/opt: got %v, %v; want nothing hidden", hid, err)
	}
}

// TestHideEnablement mounts the guest's /etc as init does, over a copy of
// a host's /etc: the host's enablement links are hidden (and still on the
// host), its other files are not, and links the guest makes itself are in
// its writable layer, which a kept disk carries to the next boot, where
// they show again while the host's stay hidden.
func TestHideEnablement(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts an overlay: needs root")
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	for _, f := range []string{"systemd/system/multi-user.target.wants/postgresql.service",
		"systemd/system/sockets.target.wants/rpcbind.socket", "systemd/user/sockets.target.wants/gpg-agent.socket",
		"systemd/system/alias.service", "hostname"} {
		os.MkdirAll(filepath.Join(host, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(host, f), []byte("host\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(host, "systemd/system/ssh.service.d"), 0o755)
	hide, upper, work, merged := filepath.Join(dir, "hide"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "etc")
	for _, d := range []string{upper, work, merged} {
		os.MkdirAll(d, 0o755)
	}
	hid, err := hideHostUnits(host, "/etc", hide)
	if err != nil || !hid {
		t.Fatalf("hideHostUnits: %v, %v", hid, err)
	}
	boot := func(t *testing.T) {
		t.Helper()
		opts := "lowerdir=" + hide + ":" + host + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Skipf("mount overlay: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(merged, 0) })
	}
	boot(t)
	for _, f := range []string{"systemd/system/multi-user.target.wants", "systemd/system/sockets.target.wants",
		"systemd/user/sockets.target.wants"} {
		if _, err := os.Stat(filepath.Join(merged, f)); !os.IsNotExist(err) {
			t.Errorf("%s: got %v, want it hidden", f, err)
		}
		if _, err := os.Stat(filepath.Join(host, f)); err != nil {
			t.Errorf("the host's %s: %v, want it untouched", f, err)
		}
	}
	for _, f := range []string{"systemd/system/alias.service", "hostname", "systemd/system/ssh.service.d"} {
		if _, err := os.Stat(filepath.Join(merged, f)); err != nil {
			t.Errorf("%s: %v, want it visible", f, err)
		}
	}
	// The guest enables a unit of its own.
	wants := filepath.Join(merged, "systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/guest.service", filepath.Join(wants, "guest.service")); err != nil {
		t.Fatal(err)
	}
	unix.Unmount(merged, 0)
	boot(t) // the next boot, on the kept disk
	entries, err := os.ReadDir(wants)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if err != nil || !slices.Equal(names, []string{"guest.service"}) {
		t.Errorf("multi-user.target.wants at the next boot: got %v, %v; want the guest's guest.service only", names, err)
	}
}

// TestInstallChecksInstallSection: the values of [Install] become parts of
// paths; one that is no unit name is refused and nothing is written
// outside the unit directory.
func TestInstallChecksInstallSection(t *testing.T) {
	tests := []struct{ name, unit, text, err string }{
		{"WantedBy", "web.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=../../../../../escaped\n",
			`enable unit web.service: WantedBy=../../../../../escaped: unit name "../../../../../escaped": want NAME.TYPE`},
		{"RequiredBy", "web.service", "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=multi-user.target ../../escaped.target\n",
			`enable unit web.service: RequiredBy=../../escaped.target: unit name "../../escaped.target": want NAME.TYPE`},
		{"DefaultInstance", "w@.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=/../../escaped\n",
			`enable unit w@.service: DefaultInstance=/../../escaped: unit name "w@/../../escaped.service": want NAME.TYPE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, "a/b/c")
			_, err := installUnits(root, nil, []agentproto.UnitFile{{Name: tt.unit, Text: tt.text}}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got %v, want an error containing %q", err, tt.err)
			}
			filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
				if err == nil && strings.Contains(d.Name(), "escaped") {
					t.Errorf("%s was made", path)
				}
				return nil
			})
		})
	}
}

// TestUnmaskNeeds: naming a unit removes vmlab's masks of what it needs,
// as the distribution's files say (sys-kernel-config.mount requires
// modprobe@configfs.service, systemd-udevd.service takes two masked
// sockets, a socket starts its service, a drop-in adds a need, %i
// expands), but not the members of a target it pulls in.
func TestUnmaskNeeds(t *testing.T) {
	lib := map[string]string{
		"sys-kernel-config.mount":      "[Unit]\nAfter=modprobe@configfs.service\nRequires=modprobe@configfs.service\n[Mount]\nWhat=configfs\n",
		"modprobe@.service":            "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=modprobe %i\n",
		"systemd-udev-trigger.service": "[Unit]\nWants=systemd-udevd.service\n",
		"systemd-udevd.service":        "[Service]\nSockets=systemd-udevd-control.socket systemd-udevd-kernel.socket\n",
		"systemd-udevd-control.socket": "[Socket]\nService=systemd-udevd.service\n",
		"systemd-udevd-kernel.socket":  "[Socket]\nService=systemd-udevd.service\n",
		"binfmt.automount":             "[Automount]\nWhere=/x\n",
		"binfmt.mount":                 "[Mount]\n",
		"app@.service":                 "[Unit]\nWants=helper-%i.service sysinit.target\n",
		"helper-a.service":             "[Service]\n",
		"sysinit.target":               "[Unit]\n",
		"dropin.service":               "[Service]\n",
		"hidden.service":               "[Service]\n",
	}
	masks := []string{"modprobe@.service", "systemd-udev-trigger.service", "systemd-udevd.service", "systemd-udevd-control.socket",
		"systemd-udevd-kernel.socket", "binfmt.mount", "helper-a.service", "sysinit.target", "hidden.service", "sys-kernel-config.mount"}
	tests := []struct {
		name     string
		units    []agentproto.UnitFile
		enable   []string
		unmasked []string
	}{
		{"a mount and its module", nil, []string{"sys-kernel-config.mount"}, []string{"sys-kernel-config.mount", "modprobe@.service"}},
		{"udev by its trigger", nil, []string{"systemd-udev-trigger.service"}, []string{"systemd-udev-trigger.service",
			"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket"}},
		{"a socket's service", nil, []string{"systemd-udevd-kernel.socket"}, []string{"systemd-udevd-kernel.socket",
			"systemd-udevd.service", "systemd-udevd-control.socket"}},
		{"an automount's mount", nil, []string{"binfmt.automount"}, []string{"binfmt.mount"}},
		{"an instance, and a target's members stay masked", nil, []string{"app@a.service"}, []string{"helper-a.service", "sysinit.target"}},
		{"a drop-in", nil, []string{"dropin.service"}, []string{"hidden.service"}},
		{"a declared unit", []agentproto.UnitFile{{Name: "mine.service", Text: "[Unit]\nRequires=sys-kernel-config.mount\n"}}, nil,
			[]string{"sys-kernel-config.mount", "modprobe@.service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, text := range lib {
				writeFile(filepath.Join(root, "lib/systemd/system", name), text)
			}
			writeFile(filepath.Join(root, "etc/systemd/system/dropin.service.d/needs.conf"), "[Unit]\nWants=hidden.service\n")
			os.MkdirAll(filepath.Join(root, "lib/systemd/system/sysinit.target.wants"), 0o755)
			os.Symlink("../sys-kernel-config.mount", filepath.Join(root, "lib/systemd/system/sysinit.target.wants/sys-kernel-config.mount"))
			for _, m := range masks {
				mask(filepath.Join(root, unitDir, m))
			}
			changed, err := installUnits(root, nil, tt.units, tt.enable)
			if err != nil || !changed {
				t.Fatalf("installUnits: %v, %v", changed, err)
			}
			for _, m := range masks {
				target, _ := os.Readlink(filepath.Join(root, unitDir, m))
				if masked, want := target == "/dev/null", !slices.Contains(tt.unmasked, m); masked != want {
					t.Errorf("%s: masked %v, want %v", m, masked, want)
				}
			}
		})
	}
}

// TestInstallUnshadows: a unit the test declares under the name of a unit
// file in the root's /etc/systemd/system (which outranks /run's) takes its
// place there; the root's other units in /etc stay.
func TestInstallUnshadows(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc/systemd/system")
	os.MkdirAll(etc, 0o755)
	for _, u := range []string{"web.service", "other.service"} {
		os.WriteFile(filepath.Join(etc, u), []byte("[Service]\nExecStart=/bin/false\n"), 0o644)
	}
	web := agentproto.UnitFile{Name: "web.service", Text: "[Service]\nExecStart=/bin/true\n"}
	if _, err := installUnits(root, nil, []agentproto.UnitFile{web}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(etc, "web.service")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the root's /etc/systemd/system/web.service: got %v, want it gone (it outranks the declared unit)", err)
	}
	if _, err := os.Stat(filepath.Join(etc, "other.service")); err != nil {
		t.Errorf("the root's other unit: %v, want it kept", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, unitDir, "web.service")); err != nil || string(b) != web.Text {
		t.Errorf("declared unit: got %q, %v; want %q", b, err, web.Text)
	}
}

// TestConsoleUnit: a systemd machine with a display gets vmlab's shell on
// tty1, wanted by the boot target and started before the agent (whose
// hello ends the boot) once it holds tty1; one without a display gets no
// unit at all; a test that enables its own login on tty1 keeps it alone.
func TestConsoleUnit(t *testing.T) {
	wants := func(root string) string { return filepath.Join(root, unitDir, bootTarget+".wants", consoleUnit) }
	plain := t.TempDir()
	if err := writeRunUnits(plain, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(plain, unitDir, consoleUnit), wants(plain)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("machine without a display: got %s (%v), want no console unit", p, err)
		}
	}
	for _, tt := range []struct {
		name   string
		enable []string
		units  []agentproto.UnitFile
		wanted bool
	}{
		{name: "alone", wanted: true},
		{name: "another unit enabled", enable: []string{"nfs-server"}, wanted: true},
		{name: "the test's getty on tty1", enable: []string{"getty@tty1"}},
		{name: "the test's autovt on tty1", units: []agentproto.UnitFile{{Name: "autovt@tty1.service", Text: "[Service]\nExecStart=/bin/true\n"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, u := range []string{"getty@.service", "nfs-server.service"} {
				writeFile(filepath.Join(root, "lib/systemd/system", u), "[Unit]\n")
			}
			if err := writeRunUnits(root, true); err != nil {
				t.Fatal(err)
			}
			text, err := os.ReadFile(filepath.Join(root, unitDir, consoleUnit))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"DefaultDependencies=no\n", "Before=" + agentUnit + "\n", "Type=exec\n",
				"ExecStart=" + loginShell().path + " -l\n", "Restart=always\n", "TTYPath=/dev/tty1\n", "StandardInput=tty-force\n", "User=root\n"} {
				if !strings.Contains(string(text), want) {
					t.Errorf("%s lacks %q:\n%s", consoleUnit, want, text)
				}
			}
			if _, err := installUnits(root, nil, tt.units, tt.enable); err != nil {
				t.Fatal(err)
			}
			target, err := os.Readlink(wants(root))
			if got := err == nil && target == filepath.Join(unitDir, consoleUnit); got != tt.wanted {
				t.Errorf("%s wanted by %s: got %v (%q, %v), want %v", consoleUnit, bootTarget, got, target, err, tt.wanted)
			}
		})
	}
}
