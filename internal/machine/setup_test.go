package machine

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

func TestSetupCommands(t *testing.T) {
	s := Setup{
		Groups:  []string{"wheel"},
		Users:   []Account{{Name: "alice", Groups: []string{"wheel", "audio"}}},
		Files:   []File{{Path: "/etc/motd.d/x", Content: "hi", Mode: 0o600}},
		Modules: []string{"dummy"},
		Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
	}
	var got []string
	for _, c := range s.commands() {
		got = append(got, c.cmd)
	}
	want := []string{
		"getent group 'audio' >/dev/null || groupadd 'audio'",
		"getent group 'wheel' >/dev/null || groupadd 'wheel'",
		"useradd -m -U -s '/bin/sh' -G 'wheel,audio' 'alice'",
		"modprobe 'dummy'",
		"echo '1' > '/proc/sys/net/ipv4/ip_forward'",
		"mkdir -p '/etc/motd.d' && cat > '/etc/motd.d/x' && chmod 600 '/etc/motd.d/x'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := quote("it's"); q != `'it'\''s'` {
		t.Errorf("quote: got %s", q)
	}
}

func TestCheckPackages(t *testing.T) {
	if err := CheckPackages([]string{"sh"}); err != nil {
		t.Errorf("sh: %v", err)
	}
	err := CheckPackages([]string{"no-such-package-xyz"})
	if err == nil || !strings.Contains(err.Error(), "no-such-package-xyz") || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("got %v, want an error naming the package", err)
	}
}

func TestCheckService(t *testing.T) {
	tests := []struct {
		name string
		s    agentproto.Service
		want string // in the error; "" for none
	}{
		{"fine", agentproto.Service{Name: "web", Command: "httpd", ReadyPort: 80, Restart: "always"}, ""},
		{"default restart", agentproto.Service{Name: "web", Command: "httpd"}, ""},
		{"no name", agentproto.Service{Command: "httpd"}, "no name"},
		{"no command", agentproto.Service{Name: "web", Command: " "}, `service "web": no command`},
		{"bad port", agentproto.Service{Name: "web", Command: "httpd", ReadyPort: 70000}, "ready port 70000"},
		{"bad restart", agentproto.Service{Name: "web", Command: "httpd", Restart: "sometimes"}, `restart "sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckService(tt.s)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
