package machine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVirtiofs boots a machine whose root and shares come over virtiofs and
// checks what 9p guarantees too: the host's files are there, its secrets are
// not, and no guest write reaches the host, not even through a share the
// guest remounts read-write.
func TestVirtiofs(t *testing.T) {
	if _, err := qemu.FindVirtiofsd(""); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("virtiofs needs root: virtiofsd sandboxes itself in new namespaces")
	}
	shared := t.TempDir()
	os.WriteFile(filepath.Join(shared, "hello.txt"), []byte("from the host\n"), 0o644)
	hostRelease, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	b, err := machine.PrepareBoot(machine.BootOptions{Agent: vmtest.Agent(t), Accel: boot.Accel.Name, FS: "virtiofs"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := machine.New(machine.Config{Boot: b, Logf: t.Logf, Machine: spec.Machine{Name: "fuse",
		Shares: []machine.Share{{HostPath: shared, GuestPath: "/mnt/shared"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("booted in %v; guest stages %+v", m.BootTime(), m.Hello().Stages)

	// Each command is a check: what it prints, or "" when it must succeed
	// silently.
	tests := []struct {
		name, cmd, want string
	}{
		{"shares come over virtiofs", "grep -q ' virtiofs ' /proc/mounts && ! grep -q ' 9p ' /proc/mounts && echo virtiofs", "virtiofs\n"},
		{"host file readable", "cat /etc/os-release", string(hostRelease)},
		{"share readable", "cat /mnt/shared/hello.txt", "from the host\n"},
		{"/root is empty", "ls -A /root", ""},
		{"guest writes land in the overlay", "touch /usr/vmlab-guest-write /mnt/shared/guest-file && echo written", "written\n"},
		{
			"a lower remounted read-write stays read-only on the host",
			`for d in $(awk '$3 == "virtiofs" {print $2}' /proc/mounts); do
				mount -o remount,rw "$d" || echo "cannot remount $d"
				touch "$d/vmlab-guest-write" 2>/dev/null && echo "wrote through $d"
			done; true`,
			"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := m.Succeed(ctx, tt.cmd)
			if err != nil || out != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.cmd, out, err, tt.want)
			}
		})
	}
	for _, p := range []string{"/usr/vmlab-guest-write", "/etc/vmlab-guest-write", "/var/vmlab-guest-write",
		"/opt/vmlab-guest-write", filepath.Join(shared, "guest-file"), filepath.Join(shared, "vmlab-guest-write")} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("a guest write reached the host: %s", p)
		}
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}
