package vmlab

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// recorder is a testing.TB that keeps what Lab.Machine reports; FailNow
// unwinds to declare.
type recorder struct {
	testing.TB
	errs []string
}

type failNow struct{}

func (r *recorder) Helper()                   { r.TB.Helper() }
func (r *recorder) Error(args ...any)         { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) FailNow()                  { panic(failNow{}) }
func (r *recorder) Fatalf(f string, a ...any) { r.Error(fmt.Sprintf(f, a...)); r.FailNow() }

// declare declares machines on a lab that boots a kernel with the module
// tree modules (the running kernel's release, so the host's /proc/sys
// counts), and returns what the lab reported.
func declare(t *testing.T, modules string, decls func(l *Lab)) (errs []string, l *Lab) {
	rec := &recorder{TB: t}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	boot := &machine.Boot{Kernel: &kernel.Kernel{Version: strings.TrimSpace(string(release)), Modules: modules}}
	l = &Lab{t: rec, boot: boot}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (failNow{}) {
				panic(r)
			}
		}()
		decls(l)
	}()
	return rec.errs, l
}

func moduleTree(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("kernel/drivers/net/dummy.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOptionProblems gives Lab.Machine one mistake at a time: the test
// fails before anything boots, naming the option at fault.
func TestOptionProblems(t *testing.T) {
	modules := moduleTree(t)
	tests := []struct {
		name string
		decl func(l *Lab)
		want []string
	}{
		{"name escapes the output directory", func(l *Lab) { l.Machine("../../x") },
			[]string{`vmlab.Lab.Machine: machine name "../../x": a machine name is a host name: letters, digits, '-' and '_', 1 to 63 of them`}},
		{"memory below the floor", func(l *Lab) { l.Machine("a", Memory(64)) },
			[]string{"vmlab.Memory: machine a: memory 64 MiB: a guest needs at least 128 MiB to boot"}},
		{"memory above the host's", func(l *Lab) { l.Machine("a", Memory(1<<30)) }, []string{"vmlab.Memory: machine a: memory 1073741824 MiB: more than the host's"}},
		{"cpus 0", func(l *Lab) { l.Machine("a", CPUs(0)) }, []string{"vmlab.CPUs: machine a: cpus 0: want at least 1"}},
		{"vlan 0", func(l *Lab) { l.Machine("a", VLANs(0)) }, []string{"vmlab.VLANs: machine a: VLAN 0 is out of range"}},
		{"missing share", func(l *Lab) { l.Machine("a", Share("/no/such/dir", "/mnt")) }, []string{"vmlab.Share: machine a: share /no/such/dir: no such host directory"}},
		{"user name", func(l *Lab) { l.Machine("a", Users("Alice")) }, []string{`vmlab.Users: machine a: user "Alice": want`}},
		{"group name", func(l *Lab) { l.Machine("a", Groups("db admins")) }, []string{`vmlab.Groups: machine a: group "db admins": want`}},
		{"file mode", func(l *Lab) { l.Machine("a", File("/x", "", 0o17777)) }, []string{"vmlab.File: machine a: file /x: mode 0o17777 is not a file mode"}},
		{"unknown module", func(l *Lab) { l.Machine("a", Modules("dummy", "no_such_module")) },
			[]string{`vmlab.Modules: machine a: kernel module "no_such_module": the kernel the machines boot (` + modules + `) has no such module`}},
		{"unknown sysctl", func(l *Lab) { l.Machine("a", Sysctl("net.ipv4.ip_foward", "1")) },
			[]string{`vmlab.Sysctl: machine a: sysctl "net.ipv4.ip_foward": the kernel has no such setting`}},
		{"missing package", func(l *Lab) { l.Machine("a", Packages("no-such-package-xyz")) }, []string{"vmlab.Packages: machine a: package no-such-package-xyz not installed"}},
		{"service port", func(l *Lab) { l.Machine("a", Services(map[string]Service{"web": {Command: "x", ReadyPort: 99999}})) },
			[]string{`vmlab.Services: machine a: service "web": ready port 99999`}},
		{"disk size", func(l *Lab) { l.Machine("a", Disks(0)) }, []string{"vmlab.Disks: machine a: disk 0: size 0 MiB"}},
		{"duplicate name", func(l *Lab) { l.Machine("a"); l.Machine("a") }, []string{`vmlab: machine "a" is declared twice`}},
		{"forward to guest port 0", func(l *Lab) { l.Machine("a", Forward(8080, 0)) }, []string{"vmlab.Forward: machine a: forward 8080 -> 0: guest port 0: want 1 to 65535"}},
		{"host port forwarded by two machines", func(l *Lab) { l.Machine("a", Forward(8080, 80)); l.Machine("b", Forward(8080, 81)) },
			[]string{"vmlab.Forward: machine b: host port 8080 is forwarded by machine a too"}},
		{"units on a fast machine", func(l *Lab) { l.Machine("a", Unit("web.service", "[Service]\nExecStart=/bin/web\n")) },
			[]string{`vmlab.Unit: machine a: units need a systemd machine: add init = "systemd"`}},
		{"unit without a type", func(l *Lab) { l.Machine("a", Systemd(), Unit("web", "[Service]\nExecStart=/bin/web\n")) },
			[]string{`vmlab.Unit: machine a: unit name "web": a unit name ends with its type (did you mean web.service?)`}},
		{"enable on a fast machine", func(l *Lab) { l.Machine("a", Enable("redis-server")) },
			[]string{`vmlab.Enable: machine a: enable needs a systemd machine`}},
		{"enable of a template", func(l *Lab) { l.Machine("a", Systemd(), Enable("getty@")) },
			[]string{`vmlab.Enable: machine a: unit getty@.service is a template: enable an instance of it, such as "getty@NAME.service"`}},
		{"every problem at once", func(l *Lab) { l.Machine("a", Memory(64), CPUs(0), Disks(0)) },
			[]string{"vmlab.Memory: machine a: memory 64 MiB", "vmlab.CPUs: machine a: cpus 0", "vmlab.Disks: machine a: disk 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, _ := declare(t, modules, tt.decl)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %q, want %d", len(errs), errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i], w) {
					t.Errorf("got %s\nwant %s...", errs[i], w)
				}
			}
		})
	}
}

// TestOptionFields walks the declaration's fields: each is set by an
// option (or, for the name, by Lab.Machine's argument), and problems with
// it name that option. A field added to spec.Machine without an option
// fails here.
func TestOptionFields(t *testing.T) {
	samples := map[string]Option{
		"memory": Memory(256), "cpus": CPUs(2), "vlans": VLANs(2), "user_net": UserNet(), "shares": Share("/", "/mnt"),
		"users": Users("alice"), "groups": Groups("ops"), "files": File("/x", "y", 0), "modules": Modules("dummy"),
		"sysctls": Sysctl("net.ipv4.ip_forward", "1"), "packages": Packages("sh"), "qemu_args": QEMUArgs("-no-hpet"),
		"services": Services(map[string]Service{"web": {Command: "httpd"}}), "disks": Disks(8),
		"disk_size": DiskSize(64), "forward_ports": Forward(8080, 80), "init": Systemd(),
		"units": Unit("web.service", "[Service]\nExecStart=/bin/web\n"), "enable": Enable("redis-server"),
		"display": Display(), "image": Image("debian:bookworm"),
	}
	for _, kw := range spec.Keywords() {
		t.Run(kw, func(t *testing.T) {
			if _, ok := optionNames[kw]; !ok {
				t.Errorf("field %q: no option named in optionNames", kw)
			}
			got, def := spec.New("b"), spec.New("a")
			if kw == "name" {
				_, l := declare(t, "", func(l *Lab) { l.Machine("b") })
				got = l.specs[0]
			} else if opt, ok := samples[kw]; ok {
				opt.set(&got)
			} else {
				t.Fatalf("field %q: no option sets it: add one (options.go) and a sample here", kw)
			}
			if reflect.DeepEqual(got.Field(kw).Interface(), def.Field(kw).Interface()) {
				t.Errorf("the option for %q left the field at %v", kw, got.Field(kw))
			}
		})
	}
	for kw := range optionNames {
		if !slices.Contains(spec.Keywords(), kw) {
			t.Errorf("optionNames names %q, which is no field of spec.Machine", kw)
		}
	}
}
