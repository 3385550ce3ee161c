package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// fakeHost is a host with 4096 MiB, 2 CPUs, a module tree that has
// overlay (with the alias fs-overlay), dummy and the built-in virtio_blk,
// a /proc/sys with ip_forward and the per-interface forwarding settings,
// dummy loaded, and the packages "present" installed.
func fakeHost(t *testing.T) Host {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"modules/modules.dep":                      "kernel/fs/overlayfs/overlay.ko.xz:\nkernel/drivers/net/dummy.ko: kernel/x.ko\n",
		"modules/modules.builtin":                  "kernel/drivers/block/virtio_blk.ko\n",
		"modules/modules.alias":                    "# Aliases\nalias fs-overlay overlay\n",
		"sys/net/ipv4/ip_forward":                  "0\n",
		"sys/net/ipv4/conf/default/forwarding":     "0\n",
		"sys/net/ipv4/conf/all/forwarding":         "0\n",
		"sys/net/ipv4/conf/lo/forwarding":          "0\n",
		"loaded/dummy/refcnt":                      "0\n",
		"share/file":                               "",
		"sys/net/ipv6/conf/default/disable_ipv6":   "0\n",
		"sys/net/ipv6/conf/default/accept_ra_defr": "0\n",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Host{MemoryMiB: 4096, CPUs: 2, Modules: filepath.Join(dir, "modules"),
		Sysctls: filepath.Join(dir, "sys"), Loaded: filepath.Join(dir, "loaded"),
		Installed: func(p string) bool { return p == "present" }}
}

// TestCheck gives Check one mistake at a time and wants it named, with its
// field; "fine" cases want no problem at all.
func TestCheck(t *testing.T) {
	host := fakeHost(t)
	share := filepath.Dir(host.Modules)
	tests := []struct {
		name  string
		edit  func(m *Machine)
		field string // "" for a declaration that must pass
		want  string
	}{
		{"defaults are fine", func(m *Machine) {}, "", ""},
		{"image", func(m *Machine) { m.Image = "debian:trixie" }, "", ""},
		{"image packages are not the host's", func(m *Machine) { m.Image, m.Packages = "debian:trixie", []string{"absent"} }, "", ""},
		{"host packages are the host's", func(m *Machine) { m.Packages = []string{"absent"} }, "packages", "package absent not installed on the host"},
		{"image without scheme", func(m *Machine) { m.Image = "bookworm" }, "image", `parse image "bookworm": no scheme`},
		{"image of unknown scheme", func(m *Machine) { m.Image = "ubuntu:noble" }, "image", `unknown scheme "ubuntu"`},
		{"image with systemd, which the image gets", func(m *Machine) { m.Image, m.Init = "debian:trixie", InitSystemd }, "", ""},
		{"name with a slash", func(m *Machine) { m.Name = "../../x" }, "name", `machine name "../../x": a machine name is a host name: letters, digits, '-' and '_', 1 to 63 of them`},
		{"name with a space", func(m *Machine) { m.Name = "a b" }, "name", "a machine name is a host name"},
		{"empty name", func(m *Machine) { m.Name = "" }, "name", `machine name ""`},
		{"name of 64 characters", func(m *Machine) { m.Name = strings.Repeat("a", 64) }, "name", "1 to 63 of them"},
		{"name of 63 characters", func(m *Machine) { m.Name = strings.Repeat("a", 63) }, "", ""},
		{"memory 0", func(m *Machine) { m.MemoryMiB = 0 }, "memory", "memory 0 MiB: a guest needs at least 128 MiB to boot"},
		{"memory 64", func(m *Machine) { m.MemoryMiB = 64 }, "memory", "memory 64 MiB: a guest needs at least 128 MiB"},
		{"memory at the floor", func(m *Machine) { m.MemoryMiB = MinMemoryMiB }, "", ""},
		{"memory above the host's", func(m *Machine) { m.MemoryMiB = 4097 }, "memory", "memory 4097 MiB: more than the host's 4096 MiB"},
		{"cpus 0", func(m *Machine) { m.CPUs = 0 }, "cpus", "cpus 0: want at least 1"},
		{"cpus above the host's", func(m *Machine) { m.CPUs = 3 }, "cpus", "cpus 3: more than the host's 2"},
		{"vlan 0", func(m *Machine) { m.VLANs = []int{0} }, "vlans", "VLAN 0 is out of range (1..254)"},
		{"vlan 255", func(m *Machine) { m.VLANs = []int{255} }, "vlans", "VLAN 255 is out of range"},
		{"vlan twice", func(m *Machine) { m.VLANs = []int{3, 3} }, "vlans", "VLAN 3 is listed twice"},
		{"no network", func(m *Machine) { m.VLANs = []int{} }, "", ""},
		{"forwards", func(m *Machine) { m.ForwardPorts = []Forward{{8080, 80}, {0, 443}, {0, 22}, {65535, 1}} }, "", ""},
		{"forward from host port 65536", func(m *Machine) { m.ForwardPorts = []Forward{{65536, 80}} }, "forward_ports",
			"forward 65536 -> 80: host port 65536: want 1 to 65535, or 0 for a free one"},
		{"forward from a negative host port", func(m *Machine) { m.ForwardPorts = []Forward{{-1, 80}} }, "forward_ports", "host port -1: want 1 to 65535"},
		{"forward to guest port 0", func(m *Machine) { m.ForwardPorts = []Forward{{8080, 0}} }, "forward_ports", "forward 8080 -> 0: guest port 0: want 1 to 65535"},
		{"forward to guest port 65536", func(m *Machine) { m.ForwardPorts = []Forward{{8080, 65536}} }, "forward_ports", "guest port 65536: want 1 to 65535"},
		{"host port twice", func(m *Machine) { m.ForwardPorts = []Forward{{8080, 80}, {8080, 81}} }, "forward_ports", "forward 8080 -> 81: host port 8080 is forwarded twice"},
		{"guest port twice", func(m *Machine) { m.ForwardPorts = []Forward{{8080, 80}, {0, 80}} }, "forward_ports", "forward 0 -> 80: guest port 80 is forwarded to twice"},
		{"share of a missing directory", func(m *Machine) { m.Shares = []Share{{"/no/such/dir", "/mnt"}} }, "shares", "share /no/such/dir: no such host directory"},
		{"share of a file", func(m *Machine) { m.Shares = []Share{{filepath.Join(share, "share/file"), "/mnt"}} }, "shares", "not a directory"},
		{"share to a relative guest path", func(m *Machine) { m.Shares = []Share{{share, "mnt"}} }, "shares", "the guest path must be absolute"},
		{"share", func(m *Machine) { m.Shares = []Share{{share, "/mnt"}} }, "", ""},
		{"upper-case user", func(m *Machine) { m.Setup.Users = []Account{{Name: "Alice"}} }, "users", `user "Alice": want a lower-case letter or '_'`},
		{"user starting with a digit", func(m *Machine) { m.Setup.Users = []Account{{Name: "1x"}} }, "users", `user "1x"`},
		{"user of 33 characters", func(m *Machine) { m.Setup.Users = []Account{{Name: strings.Repeat("a", 33)}} }, "users", "at most 32 characters"},
		{"machine account", func(m *Machine) { m.Setup.Users = []Account{{Name: "host1$"}} }, "", ""},
		{"user twice", func(m *Machine) { m.Setup.Users = []Account{{Name: "bob"}, {Name: "bob"}} }, "users", `user "bob" is declared twice`},
		{"user's bad group", func(m *Machine) { m.Setup.Users = []Account{{Name: "bob", Groups: []string{"Wheel"}}} }, "users", `user bob: group "Wheel"`},
		{"relative shell", func(m *Machine) { m.Setup.Users = []Account{{Name: "bob", Shell: "bash"}} }, "users", `shell "bash": want an absolute path`},
		{"bad group", func(m *Machine) { m.Setup.Groups = []string{"my group"} }, "groups", `group "my group"`},
		{"relative file", func(m *Machine) { m.Setup.Files = []File{{Path: "etc/x"}} }, "files", `file "etc/x": want an absolute guest path`},
		{"mode that is not a mode", func(m *Machine) { m.Setup.Files = []File{{Path: "/x", Mode: 0o17777}} }, "files", "file /x: mode 0o17777 is not a file mode"},
		{"setuid mode", func(m *Machine) { m.Setup.Files = []File{{Path: "/x", Mode: 0o4755}} }, "", ""},
		{"file twice", func(m *Machine) { m.Setup.Files = []File{{Path: "/x"}, {Path: "/x"}} }, "files", "file /x is declared twice"},
		{"unknown module", func(m *Machine) { m.Setup.Modules = []string{"no_such_mod"} }, "modules", `kernel module "no_such_mod": the kernel the machines boot (` + host.Modules + `) has no such module`},
		{"modules by name, dash, alias and built in", func(m *Machine) { m.Setup.Modules = []string{"overlay", "fs-overlay", "virtio-blk", "dummy"} }, "", ""},
		{"unknown sysctl", func(m *Machine) { m.Setup.Sysctls = map[string]string{"net.ipv4.ip_foward": "1"} }, "sysctls", `sysctl "net.ipv4.ip_foward": the kernel has no such setting`},
		{"sysctl directory", func(m *Machine) { m.Setup.Sysctls = map[string]string{"net.ipv4": "1"} }, "sysctls", "a directory of settings"},
		{"sysctl climbing out", func(m *Machine) { m.Setup.Sysctls = map[string]string{"../../etc/passwd": "1"} }, "sysctls", "not a sysctl name"},
		{"guest interface sysctls", func(m *Machine) {
			m.Setup.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth1.forwarding": "1",
				"net/ipv4/conf/eth0.100/forwarding": "1", "net.ipv4.conf.all.forwarding": "1", "net.ipv6.conf.eth2.disable_ipv6": "1"}
		}, "", ""},
		{"unknown setting of a guest interface", func(m *Machine) { m.Setup.Sysctls = map[string]string{"net.ipv4.conf.eth1.forwardin": "1"} }, "sysctls", `sysctl "net.ipv4.conf.eth1.forwardin"`},
		{"sysctl a declared module may add", func(m *Machine) {
			m.Setup.Modules = []string{"overlay"} // not loaded on the fake host
			m.Setup.Sysctls = map[string]string{"net.netfilter.nf_conntrack_max": "1"}
		}, "", ""},
		{"sysctl with a loaded module declared", func(m *Machine) {
			m.Setup.Modules = []string{"dummy"}
			m.Setup.Sysctls = map[string]string{"net.netfilter.nf_conntrack_max": "1"}
		}, "sysctls", `sysctl "net.netfilter.nf_conntrack_max"`},
		{"missing package", func(m *Machine) { m.Packages = []string{"present", "absent"} }, "packages", "package absent not installed on the host"},
		{"service with no command", func(m *Machine) { m.Services = []agentproto.Service{{Name: "web"}} }, "services", `service "web": no command`},
		{"service port 99999", func(m *Machine) { m.Services = []agentproto.Service{{Name: "web", Command: "x", ReadyPort: 99999}} }, "services", "ready port 99999: want 1 to 65535"},
		{"service restart", func(m *Machine) { m.Services = []agentproto.Service{{Name: "web", Command: "x", Restart: "sometimes"}} }, "services", `restart "sometimes"`},
		{"service log pattern", func(m *Machine) { m.Services = []agentproto.Service{{Name: "web", Command: "x", ReadyLog: "("}} }, "services", "wait_for_log: error parsing regexp"},
		{"service dir", func(m *Machine) { m.Services = []agentproto.Service{{Name: "web", Command: "x", Dir: "srv"}} }, "services", `dir "srv": want an absolute guest path`},
		{"service twice", func(m *Machine) {
			m.Services = []agentproto.Service{{Name: "web", Command: "x"}, {Name: "web", Command: "y"}}
		}, "services", `service "web" is declared twice`},
		{"disk 0", func(m *Machine) { m.Disks = []int{16, 0} }, "disks", "disk 1: size 0 MiB: want 1 to 1048576 MiB"},
		{"disk over 1 TiB", func(m *Machine) { m.Disks = []int{MaxDiskMiB + 1} }, "disks", "size 1048577 MiB"},
		{"own disk too small", func(m *Machine) { m.DiskMiB = 8 }, "disk_size", "disk_size 8 MiB: want 16 to 1048576 MiB"},
		{"own disk at its least", func(m *Machine) { m.DiskMiB = MinDiskMiB }, "", ""},
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
			if ps[0].Field != tt.field || !strings.Contains(ps[0].Error(), tt.want) {
				t.Errorf("got field %q: %v\nwant field %q: ...%s...", ps[0].Field, ps[0], tt.field, tt.want)
			}
		})
	}
}

// TestCheckEveryProblem wants all of a declaration's problems at once.
func TestCheckEveryProblem(t *testing.T) {
	m := Machine{Name: "a/b", MemoryMiB: 1, CPUs: 0, VLANs: []int{0}, DiskMiB: 8, Disks: []int{0},
		ForwardPorts: []Forward{{70000, 0}},
		Setup:        Setup{Users: []Account{{Name: "X"}}, Files: []File{{Path: "x"}}}}
	var fields []string
	for _, p := range m.Check(fakeHost(t)) {
		fields = append(fields, p.Field)
	}
	want := "name memory cpus vlans forward_ports forward_ports users files disk_size disks"
	if got := strings.Join(fields, " "); got != want {
		t.Errorf("got problems with %s, want %s", got, want)
	}
}

func TestCheckLab(t *testing.T) {
	many := make([]Machine, MaxMachines+1)
	for i := range many {
		many[i] = New("m" + strings.Repeat("x", i))
	}
	web, api, db := New("web"), New("api"), New("db")
	web.ForwardPorts = []Forward{{8080, 80}, {0, 443}}
	api.ForwardPorts = []Forward{{0, 80}, {8081, 81}}
	db.ForwardPorts = []Forward{{5432, 5432}, {8080, 8080}}
	tests := []struct {
		name  string
		ms    []Machine
		index int
		want  string
	}{
		{"duplicate names", []Machine{New("a"), New("b"), New("a")}, 2, `machine "a" is declared twice`},
		{"too many machines", many, MaxMachines, "255 machines declared; a lab holds at most 254"},
		{"host port forwarded by two machines", []Machine{web, api, db}, 2,
			"machine db: host port 8080 is forwarded by machine web too: give one of them another port (or 0 for a free one)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := CheckLab(tt.ms)
			if len(ps) != 1 || ps[0].Index != tt.index || !strings.Contains(ps[0].Error(), tt.want) {
				t.Errorf("got %v, want one problem at machine %d: %s", ps, tt.index, tt.want)
			}
		})
	}
	if ps := CheckLab([]Machine{web, api}); len(ps) > 0 {
		t.Errorf("two machines each picking a free port: got %v, want no problem", Join(ps))
	}
}

// TestForwardsImplyUserNet: forwards go through eth0, so declaring one
// gives the machine its user-mode NIC.
func TestForwardsImplyUserNet(t *testing.T) {
	m := New("web")
	if m.WithDefaults().UserNet {
		t.Errorf("a machine with no forward got a user-mode NIC")
	}
	m.ForwardPorts = []Forward{{8080, 80}}
	if !m.WithDefaults().UserNet {
		t.Errorf("a machine forwarding 8080 -> 80 got no user-mode NIC")
	}
}

func TestInside(t *testing.T) {
	tests := []struct {
		rel, want string // want "" for an error
	}{
		{"server", "/out/server"},
		{"a/b", "/out/a/b"},
		{"../../x", ""},
		{"a/../../x", ""},
		{"/etc", ""},
		{"", ""},
		{"..", ""},
	}
	for _, tt := range tests {
		got, err := Inside("/out", tt.rel)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("Inside(/out, %q): got %q, %v; want %q", tt.rel, got, err, tt.want)
		}
	}
}

// TestLocalHost checks the running host's description against this
// machine: its memory and CPUs are known, and the module tree is the
// default kernel's when there is one.
func TestLocalHost(t *testing.T) {
	h := LocalHost()
	if h.MemoryMiB <= 0 || h.CPUs <= 0 {
		t.Errorf("got %d MiB, %d CPUs; want the host's", h.MemoryMiB, h.CPUs)
	}
	if h.Modules != "" {
		if _, err := os.Stat(filepath.Join(h.Modules, "modules.dep")); err != nil {
			t.Errorf("module tree %s: %v", h.Modules, err)
		}
	}
	if !Installed("sh") || Installed("no-such-package-xyz") {
		t.Errorf("Installed: sh is on PATH, no-such-package-xyz is nowhere")
	}
}

// TestKeywords checks that every field has a keyword, once.
func TestKeywords(t *testing.T) {
	kws := Keywords()
	seen := make(map[string]bool)
	for _, kw := range kws {
		if kw == "" || seen[kw] {
			t.Errorf("keyword %q: want every field tagged, with a keyword of its own", kw)
		}
		seen[kw] = true
	}
	m := New("a")
	if got := m.Field("memory").Int(); got != DefaultMemoryMiB {
		t.Errorf("Field(memory): got %d, want %d", got, DefaultMemoryMiB)
	}
	m.Field("modules").Set(reflect.ValueOf([]string{"dummy"}))
	if m.Setup.Modules[0] != "dummy" {
		t.Errorf("Field(modules) does not reach Setup.Modules")
	}
}
