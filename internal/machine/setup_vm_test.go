package machine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSetupInGuest applies a whole setup at boot (1000 files among it), and
// checks that a failing item is named at once.
func TestSetupInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots four VMs")
	}
	ctx := t.Context()
	t.Run("applied", func(t *testing.T) {
		files := []machine.File{
			{Path: "/usr/local/bin/hello", Content: "#!/bin/sh\necho hello\n", Mode: 0o755},
			{Path: "/etc/binary", Content: "\x00\xff\xfe\n"},
			{Path: "/etc/hosts.allow", Content: "replaced\n", Mode: 0o600}, // exists on the host
		}
		for i := range 1000 {
			files = append(files, machine.File{Path: fmt.Sprintf("/etc/many/d%d/f%d", i%10, i), Content: "x\n"})
		}
		m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "setup", Setup: machine.Setup{
			Groups:  []string{"lab"},
			Users:   []machine.Account{{Name: "alice", Groups: []string{"wheel2", "lab"}}},
			Files:   files,
			Modules: []string{"dummy"},
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
		}}})
		checks := []struct{ cmd, want string }{
			{"hello", "hello\n"},
			{"od -An -tx1 /etc/binary | tr -d ' \\n'", "00fffe0a"},
			{"stat -c %a /etc/hosts.allow /usr/local/bin/hello /etc/binary; cat /etc/hosts.allow", "600\n755\n644\nreplaced\n"},
			{"find /etc/many -type f | wc -l", "1000\n"},
			{"id -nG alice | tr ' ' '\\n' | sort | tr '\\n' ' '", "alice lab wheel2 "},
			{"test -d /home/alice && echo home", "home\n"},
			{"cat /proc/sys/net/ipv4/ip_forward", "1\n"},
			{"grep -c '^dummy ' /proc/modules", "1\n"},
		}
		for _, c := range checks {
			if out, err := m.Succeed(ctx, c.cmd); err != nil || out != c.want {
				t.Errorf("%s: got %q, %v; want %q", c.cmd, out, err, c.want)
			}
		}
	})
	tests := []struct {
		name  string
		setup machine.Setup
		want  string
	}{
		// Unknown sysctls and modules are refused before boot (package
		// spec); a read-only one passes that check and fails in the guest.
		{"read-only sysctl", machine.Setup{Sysctls: map[string]string{"fs.file-nr": "1"}},
			"sysctl fs.file-nr: open /proc/sys/fs/file-nr: permission denied"},
		{"file under a file", machine.Setup{Files: []machine.File{{Path: "/etc/hostname/x", Content: "x"}}},
			"file /etc/hostname/x: mkdir /etc/hostname: not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "bad", Setup: tt.setup}})
			start := time.Now()
			err := m.Start(ctx)
			if err == nil || !strings.Contains(err.Error(), "bad: boot: set up the machine: "+tt.want) {
				t.Fatalf("got %v\nwant an error with %q", err, tt.want)
			}
			// The agent's answer ends the boot at once: not a machine
			// that went down, nor a timeout.
			var de *machine.DownError
			var te *machine.TimeoutError
			if errors.As(err, &de) || errors.As(err, &te) {
				t.Errorf("got %T, want the agent's answer", err)
			}
			t.Logf("reported after %v: %v", time.Since(start), err)
		})
	}
}
