package script

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadErrors checks that bad files are refused with file:line:col and a
// hint, before anything boots.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"syntax", "server = machine()\ndef test(:\n  pass\n", []string{"bad.star:2:11", "got"}},
		{"unknown option", "server = machine(memroy = 512)\ndef test():\n  pass\n", []string{"bad.star:1:", "memroy"}},
		{"wrong type", "server = machine(vlans = 'one')\ndef test():\n  pass\n", []string{"bad.star:1:", "vlans"}},
		{"misspelled method", "server = machine()\ndef test():\n  server.suceed('true')\n", []string{"bad.star:3:10", `no method "suceed"`, "did you mean succeed?"}},
		{"undeclared machine", "server = machine()\ndef test():\n  client.succeed('true')\n", []string{"bad.star:3:3", "undefined: client"}},
		{"duplicate names", "a = machine(name = 'x')\nb = machine(name = 'x')\ndef test():\n  pass\n", []string{`"x" is declared twice`}},
		{"bad vlan", "a = machine(vlans = [0])\ndef test():\n  pass\n", []string{"VLAN 0 is out of range"}},
		{"no test", "a = machine()\n", []string{"no test function"}},
		{"test with parameters", "a = machine()\ndef test(x):\n  pass\n", []string{"bad.star:2:", "takes parameters"}},
		{"test-only call at top level", "a = machine()\nstart_all()\ndef test():\n  pass\n", []string{"bad.star:2:", "only a test function"}},
		{"wrong literal type", "server = machine()\ndef test():\n  server.wait_for_open_port('80')\n", []string{"bad.star:3:29", "wait_for_open_port(): port wants a port number 1..65535, got string"}},
		{"bad timeout", "server = machine()\ndef test():\n  server.succeed('true', timeout = True)\n", []string{"bad.star:3:36", "timeout wants a duration"}},
		{"unknown keyword", "server = machine()\ndef test():\n  server.wait_for_file('/x', timout = 5)\n", []string{"bad.star:3:30", `no parameter "timout"`}},
		{"too many arguments", "server = machine()\ndef test():\n  server.wait_for_file('/x', 5, 6)\n", []string{"bad.star:3:33", "wait_for_file() takes at most 2 positional arguments"}},
		{"misspelled method on the machine alias", "server = machine()\ndef test():\n  machine.suceed('true')\n", []string{"bad.star:3:11", `machine server has no method "suceed"`}},
		{"undeclared service", "s = machine(services = {'web': service('httpd')})\ndef test():\n  s.wait_for_unit('wbe')\n", []string{"bad.star:3:19", `declares no service "wbe" (did you mean web?)`}},
		{"service on a machine without services", "s = machine()\ndef test():\n  s.wait_for_unit('nginx')\n", []string{"bad.star:3:19", "declares no services"}},
		{"misspelled target is not a service", "s = machine()\ndef test():\n  s.wait_for_unit('default.traget')\n", []string{"bad.star:3:19", "declares no services"}},
		{"unassigned machine", "machine()\ndef test():\n  pass\n", []string{"bad.star:1:", "not assigned to a variable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("bad.star", []byte(tt.src))
			if err == nil {
				t.Fatal("got nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	src := `
server = machine(vlans = [1, 2], memory = 256)
client = machine(name = "client", vlans = [2])
n = 0
while n < 3:
    n += 1
def helper():
    pass
def test_b():
    server.succeed("true")
def test():
    pass
def test_a():
    pass
`
	f, err := Load("ok.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Tests, ","); got != "test_b,test,test_a" {
		t.Errorf("got tests %s, want them in file order", got)
	}
	if len(f.Specs) != 2 || f.Specs[0].Name != "server" || f.Specs[0].MemoryMiB != 256 || len(f.Specs[1].VLANs) != 1 {
		t.Errorf("got specs %+v", f.Specs)
	}
	sel, err := f.Select("^test_")
	if err != nil || strings.Join(sel, ",") != "test_b,test_a" {
		t.Errorf("Select: got %v, %v", sel, err)
	}
}

// builtShares are the directories an example shares that a build script
// makes (and git ignores): TestExamplesLoad loads the example from a copy
// beside empty ones, so that a clean checkout checks it too.
var builtShares = map[string][]string{"coverage.star": {"coverage/bin"}}

// TestExamplesLoad checks every example file in the repository is valid.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.star")
	if len(files) == 0 {
		t.Skip("no .star examples yet")
	}
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if dirs := builtShares[filepath.Base(p)]; dirs != nil {
			copyDir := t.TempDir()
			for _, d := range dirs {
				if err := os.MkdirAll(filepath.Join(copyDir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			p = filepath.Join(copyDir, filepath.Base(p))
		}
		if _, err := Load(p, src); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestMachineAlias: in a file with one machine, `machine` also stands for it.
func TestMachineAlias(t *testing.T) {
	f, err := Load("one.star", []byte("server = machine()\ndef test():\n  machine.succeed('true')\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := predeclared(f)["machine"].(*declarer)
	if v, err := d.Attr("succeed"); err != nil || v == nil {
		t.Errorf("machine.succeed: got %v, %v", v, err)
	}
	f2, _ := Load("two.star", []byte("a = machine()\nb = machine()\ndef test():\n  pass\n"))
	if _, err := predeclared(f2)["machine"].(*declarer).Attr("succeed"); err == nil {
		t.Error("machine.succeed with two machines: got nil error")
	}
}

func TestServiceDeclaration(t *testing.T) {
	f, err := Load("svc.star", []byte(`
web = machine(services = {"web": service("python3 -m http.server 80", wait_for_port = 80, restart = "on-failure", env = {"A": "b"})})
def test():
    web.wait_for_unit("default.target")
    web.wait_for_unit("web")
    web.wait_for_unit("web.service")
`))
	if err != nil {
		t.Fatal(err)
	}
	svcs := f.Specs[0].Services
	if len(svcs) != 1 || svcs[0].Name != "web" || svcs[0].ReadyPort != 80 || svcs[0].Restart != "on-failure" || svcs[0].Env[0] != "A=b" {
		t.Errorf("got %+v", svcs)
	}
	_, err = Load("svc.star", []byte("web = machine(services = {\"web\": service(\"x\", restart = \"sometimes\")})\ndef test():\n  pass\n"))
	if err == nil || !strings.Contains(err.Error(), "sometimes") || !strings.Contains(err.Error(), "svc.star:1:") {
		t.Errorf("bad restart policy: got %v", err)
	}
}
