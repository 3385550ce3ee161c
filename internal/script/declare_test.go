package script

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

// fixtureHost makes Load check against a host whose kernel has the modules
// dummy and overlay, whose /proc/sys has ip_forward and the per-interface
// forwarding settings, and whose root has systemd with the units
// fixtureUnits, so the cases do not depend on the kernel this machine
// boots or its packages' units; memory, CPUs and packages are the real
// host's.
func fixtureHost(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"modules/modules.dep":                  "kernel/drivers/net/dummy.ko:\nkernel/fs/overlayfs/overlay.ko:\nkernel/drivers/gpu/drm/tiny/bochs.ko:\n",
		"sys/net/ipv4/ip_forward":              "0\n",
		"sys/net/ipv4/conf/default/forwarding": "0\n",
	} {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := spec.LocalHost()
	h.Modules, h.Sysctls, h.Loaded = filepath.Join(dir, "modules"), filepath.Join(dir, "sys"), filepath.Join(dir, "loaded")
	h.Systemd, h.Units = true, func() []string { return fixtureUnits }
	old := checkHost
	checkHost = func() spec.Host { return h }
	t.Cleanup(func() { checkHost = old })
}

// fixtureUnits are the units of fixtureHost's root.
var fixtureUnits = []string{"getty@.service", "multi-user.target", "nfs-server.service", "redis-server.service"}

// TestDeclarationErrors gives machine() one mistake at a time: each is
// refused at load, at the keyword argument it is about (or at the call).
func TestDeclarationErrors(t *testing.T) {
	fixtureHost(t)
	tests := []struct {
		name, decl string // decl is line 1 of the file
		want       string // the whole error, file:line:col first
	}{
		{"name escapes the output directory", `a = machine(name = "../../x")`,
			`bad.star:1:13: machine name "../../x": a machine name is a host name: letters, digits, '-' and '_', 1 to 63 of them`},
		{"name with a space", `a = machine(name = "web server")`, `bad.star:1:13: machine name "web server": a machine name is a host name`},
		{"memory 0", `a = machine(memory = 0)`, "bad.star:1:13: machine a: memory 0 MiB: a guest needs at least 128 MiB to boot"},
		{"memory that hangs the boot", `a = machine(memory = 64)`, "bad.star:1:13: machine a: memory 64 MiB: a guest needs at least 128 MiB to boot"},
		{"memory above the host's", `a = machine(cpus = 1, memory = 1 << 30)`, "bad.star:1:23: machine a: memory 1073741824 MiB: more than the host's"},
		{"cpus 0", `a = machine(cpus = 0)`, "bad.star:1:13: machine a: cpus 0: want at least 1"},
		{"cpus above the host's", `a = machine(cpus = 4096)`, "bad.star:1:13: machine a: cpus 4096: more than the host's"},
		{"vlan out of range", `a = machine(vlans = [1, 300])`, "bad.star:1:13: machine a: VLAN 300 is out of range (1..254)"},
		{"mode that is not a mode", `a = machine(files = {"/x": {"content": "", "mode": 0o17777}})`,
			"bad.star:1:13: machine a: file /x: mode 0o17777 is not a file mode (want 0 to 0o7777, such as 0o755)"},
		{"negative mode", `a = machine(files = {"/x": {"mode": -1}})`, `bad.star:1:13: machine a: files: "/x": mode -1 is not a file mode`},
		{"relative file path", `a = machine(files = {"etc/motd": "hi"})`, `bad.star:1:13: machine a: file "etc/motd": want an absolute guest path`},
		{"user name useradd refuses", `a = machine(users = ["Alice"])`, `bad.star:1:13: machine a: user "Alice": want a lower-case letter or '_'`},
		{"group name groupadd refuses", `a = machine(groups = ["db admins"])`, `bad.star:1:13: machine a: group "db admins": want`},
		{"unknown sysctl", `a = machine(sysctls = {"net.ipv4.ip_foward": 1})`,
			`bad.star:1:13: machine a: sysctl "net.ipv4.ip_foward": the kernel has no such setting`},
		{"unknown module", `a = machine(modules = ["dummy", "no_such_module"])`,
			`bad.star:1:13: machine a: kernel module "no_such_module": the kernel the machines boot`},
		{"share of a missing directory", `a = machine(shares = {"/no/such/dir": "/mnt"})`, "bad.star:1:13: machine a: share /no/such/dir: no such host directory"},
		{"missing package", `a = machine(packages = ["no-such-package-xyz"])`, "bad.star:1:13: machine a: package no-such-package-xyz not installed on the host"},
		{"service port 99999", `a = machine(services = {"web": service("httpd", wait_for_port = 99999)})`,
			`bad.star:1:13: machine a: service "web": ready port 99999: want 1 to 65535`},
		{"disk of 0 MiB", `a = machine(disks = [0])`, "bad.star:1:13: machine a: disk 0: size 0 MiB: want 1 to 1048576 MiB"},
		{"forward from port 70000", `a = machine(forward_ports = {70000: 80})`,
			"bad.star:1:13: machine a: forward 70000 -> 80: host port 70000: want 1 to 65535, or 0 for a free one"},
		{"forward to one guest port twice", `a = machine(forward_ports = {8080: 80, 8081: 80})`,
			"bad.star:1:13: machine a: forward 8081 -> 80: guest port 80 is forwarded to twice"},
		{"forward of a string", `a = machine(forward_ports = {8080: "http"})`,
			`bad.star:1:13: machine a: forward_ports: 8080: "http": want ports as ints, {host port: guest port} or [(host port, guest port), ...]`},
		{"forward that is not a pair", `a = machine(forward_ports = [(8080, 80, 1)])`,
			"bad.star:1:13: machine a: forward_ports: [0]: got (8080, 80, 1), want a (host port, guest port) pair"},
		{"forward of a port", `a = machine(forward_ports = 8080)`,
			"bad.star:1:13: machine a: forward_ports: got int, want {host port: guest port} or [(host port, guest port), ...]"},
		{"host port forwarded by two machines", "a = machine(forward_ports = {8080: 80})\nb = machine(cpus = 1, forward_ports = {8080: 8080})",
			"bad.star:2:23: machine b: host port 8080 is forwarded by machine a too"},
		{"unknown argument", `a = machine(cpus = 1, memroy = 512)`, `bad.star:1:23: machine a: machine() has no argument "memroy" (did you mean memory?)`},
		{"wrong type", `a = machine(vlans = "one")`, "bad.star:1:13: machine a: vlans: got string, want a list"},
		{"duplicate names", "a = machine(name = \"x\")\nb = machine(cpus = 1, name = \"x\")", `bad.star:2:23: machine "x" is declared twice`},
		{"init misspelled", `a = machine(init = "sytemd")`, `bad.star:1:13: machine a: init "sytemd": want "systemd", or "fast" (the default) (did you mean systemd?)`},
		{"init of a number", `a = machine(init = 1)`, "bad.star:1:13: machine a: init: got int, want a string"},
		{"units on a fast machine", `a = machine(units = {"web.service": "[Service]\nExecStart=/bin/web\n"})`,
			`bad.star:1:13: machine a: units need a systemd machine: add init = "systemd" to the machine`},
		{"units of a service", `a = machine(init = "systemd", units = {"web.service": service("httpd")})`,
			`bad.star:1:31: machine a: units: "web.service": a service(...) goes in services = {"web": service(...)}, which a systemd machine runs as the unit web.service; units takes unit file texts`},
		{"units as a list", `a = machine(init = "systemd", units = ["web.service"])`,
			`bad.star:1:31: machine a: units: got list, want a dict {"NAME.service": """[Unit] ..."""}`},
		{"unit without a type", `a = machine(init = "systemd", units = {"web": "[Service]\nExecStart=/bin/web\n"})`,
			`bad.star:1:31: machine a: unit name "web": a unit name ends with its type (did you mean web.service?)`},
		{"unit with no section", `a = machine(init = "systemd", units = {"web.service": "ExecStart=/bin/web"})`,
			`bad.star:1:31: machine a: unit web.service: line 1 "ExecStart=/bin/web" is outside any section`},
		{"enable of a string", `a = machine(init = "systemd", enable = "redis-server")`, "bad.star:1:31: machine a: enable: got string, want a list"},
		{"enable misspelled", `a = machine(init = "systemd", enable = ["redis-sever"])`,
			"bad.star:1:31: machine a: no unit redis-sever.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean redis-server.service?)"},
		{"too many machines", `ms = [machine(name = "m%d" % i) for i in range(255)]`, "bad.star:1:14: machine m254: 255 machines declared; a lab holds at most 254"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("bad.star", []byte(tt.decl+"\ndef test():\n    pass\n"))
			if err == nil {
				t.Fatalf("got no error, want %s", tt.want)
			}
			if got := err.Error(); !strings.HasPrefix(got, tt.want) || strings.Count(got, "\n") > 0 {
				t.Errorf("got\n%s\nwant one error starting\n%s", got, tt.want)
			}
		})
	}
}

// TestFiveMistakes loads a file with five declaration mistakes on three
// machines and a misspelled method: all six come back from one Load, each
// at its place, in file order.
func TestFiveMistakes(t *testing.T) {
	fixtureHost(t)
	src := `server = machine(memory = 64,
    files = {"/etc/x": {"mode": 0o10000}})
client = machine(users = ["Bob"], vlans = [0])
router = machine(sysctls = {"net.ipv4.ip_foward": 1})
def test():
    server.suceed("true")
`
	_, err := Load("five.star", []byte(src))
	if err == nil {
		t.Fatal("got no error, want six")
	}
	want := []string{
		"five.star:1:18: machine server: memory 64 MiB",
		"five.star:2:5: machine server: file /etc/x: mode 0o10000",
		`five.star:3:18: machine client: user "Bob"`,
		"five.star:3:35: machine client: VLAN 0 is out of range",
		`five.star:4:18: machine router: sysctl "net.ipv4.ip_foward"`,
		`five.star:6:12: machine server has no method "suceed"`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d: got %s, want %s...", i+1, got[i], want[i])
		}
	}
}

// TestSystemdMistakes loads a file with three mistakes of systemd
// machines: all three come back from Load, each at its keyword, before
// anything boots (Load boots nothing: a file it refuses never runs).
func TestSystemdMistakes(t *testing.T) {
	fixtureHost(t)
	src := `server = machine(init = "systemd", enable = ["nfs-servr"])
client1 = machine(init = "systemmd")
client2 = machine(
    units = {"mnt-nfs.mount": """[Mount]
What=server:/
Where=/mnt/nfs
"""})
def test():
    pass
`
	_, err := Load("nfs.star", []byte(src))
	if err == nil {
		t.Fatal("got no error, want three")
	}
	want := []string{
		"nfs.star:1:36: machine server: no unit nfs-servr.service in units or in the root's /etc/systemd/system and /lib/systemd/system (did you mean nfs-server.service?): declare it in units, or install the package that ships it on the host (the guests' root is the host's)",
		`nfs.star:2:19: machine client1: init "systemmd": want "systemd", or "fast" (the default) (did you mean systemd?)`,
		`nfs.star:4:5: machine client2: units need a systemd machine: add init = "systemd" to the machine (in fast mode, the default, vmlab's agent is PID 1 and runs no unit files; services = {...} run there)`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSystemdDeclaration loads a systemd machine: its init, units (in the
// dict's order, texts as written) and enable reach the declaration.
func TestSystemdDeclaration(t *testing.T) {
	fixtureHost(t)
	src := `web = machine(init = "systemd",
    units = {
        "web.service": """[Unit]
Description=web

[Service]
ExecStart=/usr/bin/busybox httpd -f -p 80

[Install]
WantedBy=multi-user.target
""",
        "web.socket": "[Socket]\nListenStream=80\n",
    },
    enable = ["redis-server", "getty@tty1.service", "web.socket"])
def test():
    pass
`
	f, err := Load("web.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Specs[0]
	if !s.Systemd() {
		t.Errorf("init = \"systemd\": got Init %q", s.Init)
	}
	if len(s.Units) != 2 || s.Units[0].Name != "web.service" || s.Units[1].Name != "web.socket" ||
		!strings.HasPrefix(s.Units[0].Text, "[Unit]\nDescription=web\n\n[Service]\n") || s.Units[1].Text != "[Socket]\nListenStream=80\n" {
		t.Errorf("got units %q", s.Units)
	}
	if want := []string{"redis-server", "getty@tty1.service", "web.socket"}; !slices.Equal(s.Enable, want) {
		t.Errorf("got enable %q, want %q (as written: the guest completes names)", s.Enable, want)
	}
}

// TestDeclarationThenRuntimeError loads a file whose top level fails after
// declaring a bad machine: both are reported.
func TestDeclarationThenRuntimeError(t *testing.T) {
	fixtureHost(t)
	src := "server = machine(memory = 64)\nstart_all()\ndef test():\n    pass\n"
	_, err := Load("late.star", []byte(src))
	for _, want := range []string{"late.star:1:18: machine server: memory 64 MiB", "late.star:2:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error with %s", err, want)
		}
	}
}

// TestDeclarationFine loads what the checks must let through.
func TestDeclarationFine(t *testing.T) {
	fixtureHost(t)
	src := `router = machine(vlans = [1, 2], memory = 128, cpus = 1, modules = ["dummy"],
    sysctls = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.eth1.forwarding": "1"},
    users = {"alice": {"groups": ["wheel"], "shell": "/bin/bash"}}, groups = ["_ops"],
    files = {"/usr/local/bin/x": {"content": "#!/bin/sh\n", "mode": 0o4755}},
    shares = {".": "/mnt"}, packages = ["sh"], disks = [16], qemu_args = ["-smp", "1"])
isolated = machine(vlans = [])
web = machine(forward_ports = {8080: 80, 0: 443})
api = machine(forward_ports = [(0, 80), (0, 443), (8081, 22)])
def test():
    pass
`
	f, err := Load(filepath.Join(t.TempDir(), "fine.star"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Specs[0]; s.Name != "router" || s.MemoryMiB != 128 || len(s.Shares) != 1 || !filepath.IsAbs(s.Shares[0].HostPath) {
		t.Errorf("got %+v", s)
	}
	if v := f.Specs[1].VLANs; v == nil || len(v) != 0 {
		t.Errorf("vlans = []: got %#v, want an empty list (no network), not nil (VLAN 1)", v)
	}
	forwards := []spec.Forward{{HostPort: 8080, GuestPort: 80}, {HostPort: 0, GuestPort: 443}}
	if got := f.Specs[2].ForwardPorts; !slices.Equal(got, forwards) {
		t.Errorf("forward_ports = {8080: 80, 0: 443}: got %v, want %v, in the dict's order", got, forwards)
	}
	forwards = []spec.Forward{{HostPort: 0, GuestPort: 80}, {HostPort: 0, GuestPort: 443}, {HostPort: 8081, GuestPort: 22}}
	if got := f.Specs[3].ForwardPorts; !slices.Equal(got, forwards) {
		t.Errorf("forward_ports = [(0, 80), (0, 443), (8081, 22)]: got %v, want %v", got, forwards)
	}
}

// TestShareRelativeToRelativeFile: a share's relative host directory is
// the test file's directory joined with it, made absolute, also when the
// file was named by a relative path (vmlab run examples/x.star): the check
// wants an absolute path, and it refused every relative share then.
func TestShareRelativeToRelativeFile(t *testing.T) {
	fixtureHost(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	f, err := Load(filepath.Join("tests", "rel.star"), []byte(`m = machine(shares = {"bin": "/opt/bin"})
def test():
    pass
`))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "tests", "bin")
	if got := f.Specs[0].Shares; len(got) != 1 || got[0].HostPath != want {
		t.Errorf("got shares %+v, want host path %s", got, want)
	}
}

// TestSpecFields walks the declaration's fields: each can be set from a
// test file through its machine() argument, and each machine() argument
// sets a field. A field added to spec.Machine without an argument fails
// here (its Go option is checked in package vmlab, its flag in cli).
func TestSpecFields(t *testing.T) {
	fixtureHost(t)
	fixture := checkHost
	checkHost = func() spec.Host { h := fixture(); h.CPUs = 64; return h }
	samples := map[string]string{
		"name": `name = "b"`, "memory": "memory = 256", "cpus": "cpus = 2", "vlans": "vlans = [2]",
		"user_net": "user_net = True", "shares": `shares = {"/": "/mnt"}`, "users": `users = ["alice"]`,
		"groups": `groups = ["ops"]`, "files": `files = {"/x": "y"}`, "modules": `modules = ["dummy"]`,
		"sysctls": `sysctls = {"net.ipv4.ip_forward": 1}`, "packages": `packages = ["sh"]`,
		"qemu_args": `qemu_args = ["-no-hpet"]`, "services": `services = {"web": service("httpd")}`, "disks": "disks = [8]",
		"disk_size": "disk_size = 64", "forward_ports": "forward_ports = {8080: 80}", "init": `init = "systemd"`,
		"units":   `init = "systemd", units = {"web.service": "[Service]\nExecStart=/bin/web\n"}`,
		"enable":  `init = "systemd", enable = ["redis-server"]`,
		"display": "display = True", "image": `image = "debian:bookworm"`,
	}
	for _, kw := range spec.Keywords() {
		t.Run(kw, func(t *testing.T) {
			sample, ok := samples[kw]
			if !ok {
				t.Fatalf("spec.Machine's field %q has no sample here: give it a machine() argument (machineArgs) and a sample", kw)
			}
			f, err := Load("fields.star", []byte("a = machine("+sample+")\ndef test():\n    pass\n"))
			if err != nil {
				t.Fatal(err)
			}
			def := spec.New("a")
			if got, unset := f.Specs[0].Field(kw).Interface(), def.Field(kw).Interface(); reflect.DeepEqual(got, unset) {
				t.Errorf("machine(%s) left the field at %v", sample, got)
			}
		})
	}
	for _, a := range machineArgs {
		if !slices.Contains(spec.Keywords(), a.name) {
			t.Errorf("machine() argument %q sets no field of spec.Machine", a.name)
		}
	}
}

// TestCopyTarget checks that copy_from_vm's copy stays in the test's
// out/files, whatever the file passes as source and target_dir.
func TestCopyTarget(t *testing.T) {
	tests := []struct {
		dir, src, want string // want "" for a refusal
	}{
		{"", "/etc/hostname", "/out/files/hostname"},
		{"logs", "/var/log/x.log", "/out/files/logs/x.log"},
		{"a/b", "/srv/data/", "/out/files/a/b/data"},
		{"../x", "/etc/hostname", ""},
		{"a/../../x", "/etc/hostname", ""},
		{"/tmp", "/etc/hostname", ""},
		{"", "/", ""},
		{"", "/srv/..", ""},
		{"logs", "..", ""},
	}
	for _, tt := range tests {
		_, dst, err := copyTarget("/out", tt.dir, tt.src)
		if dst != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("copy_from_vm(%q, target_dir = %q): got %q, %v; want %q", tt.src, tt.dir, dst, err, tt.want)
		}
	}
}

// TestSystemdDocExample loads the example of docs/test-files.md's
// "Systemd machines": what the docs show passes the checks.
func TestSystemdDocExample(t *testing.T) {
	fixtureHost(t)
	doc, err := os.ReadFile("../../docs/test-files.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "### Systemd machines")
	_, example, _ := strings.Cut(section, "```python\n")
	example, _, ok := strings.Cut(example, "```")
	if !ok {
		t.Fatal("docs/test-files.md's Systemd machines has no python example")
	}
	f, err := Load("doc.star", []byte(example+"def test():\n    pass\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Specs) != 2 || !f.Specs[0].Systemd() || len(f.Specs[1].Units) != 1 {
		t.Errorf("got %+v, want two systemd machines, the second with one unit", f.Specs)
	}
}
