package machine

import (
	"strings"
	"testing"
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
	for _, c := range setupCommands(s) {
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
