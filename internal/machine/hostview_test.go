package machine_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// lowerOf is a shell function printing the lower layer of the overlay on a
// guest directory: the share as QEMU (or virtiofsd) serves it, read with
// the guest's own 9p or virtiofs client and no overlay in between. It is
// what a hostile root in the guest gets by mounting the share itself (a
// second mount of the tag is refused while the first holds its channel).
const lowerOf = `lowerOf() { sed -n "s|^overlay $1 overlay .*lowerdir=[^,]*/lower/\([^,]*\),.*|/run/vmlab/lower/\1|p" /proc/mounts; }; `

// TestHostSecretsHidden boots two machines and reads the host's secret
// paths in each guest, through its root and through the lower layers:
// neither shows the host's password hashes, host keys, TLS keys or service
// data, and each machine has its own host keys and machine-id.
func TestHostSecretsHidden(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two VMs")
	}
	if os.Geteuid() != 0 {
		t.Skip("the host view needs root; without it QEMU reads the host as the user running vmlab (docs/host-isolation.md)")
	}
	machines := []*machine.Machine{
		vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "one", Setup: machine.Setup{Users: []machine.Account{{Name: "alice"}}}}}),
		vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "two"}}),
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	for _, m := range machines {
		wg.Go(func() {
			if err := m.Start(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	read := func(t *testing.T, m *machine.Machine, cmd string) string {
		t.Helper()
		out, err := m.Succeed(ctx, lowerOf+cmd)
		if err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		return out
	}

	t.Run("shadow", func(t *testing.T) {
		host, err := os.ReadFile("/etc/shadow")
		if err != nil {
			t.Skip(err)
		}
		for _, m := range machines {
			for _, path := range []string{"/etc/shadow", "$(lowerOf /etc)/shadow"} {
				checkShadow(t, m.Name()+":"+path, string(host), read(t, m, "cat "+path))
			}
		}
		if out := read(t, machines[0], "grep -c '^alice:' /etc/shadow"); out != "1\n" {
			t.Errorf("one:/etc/shadow has %q lines for alice, want 1 (the declared user)", out)
		}
	})

	t.Run("identity", func(t *testing.T) {
		hostID, _ := os.ReadFile("/etc/machine-id")
		cmd := "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub; " +
			"stat -c '%U %a' /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ecdsa_key"
		if _, err := os.Stat("/etc/ssh"); err != nil {
			t.Skip("the host has no /etc/ssh: the view has no host keys to replace")
		}
		var ids []string
		for _, m := range machines {
			out := read(t, m, cmd)
			lines := strings.Split(out, "\n")
			if len(lines) < 5 || lines[3] != "root 600" || lines[4] != "root 600" {
				t.Fatalf("%s: got %q, want a machine-id, two public keys, and private keys 0600 owned by root", m.Name(), out)
			}
			for _, l := range lines[:3] {
				if strings.Contains(string(hostID), l) || hostHasKey(l) {
					t.Errorf("%s: %q is the host's", m.Name(), l)
				}
			}
			ids = append(ids, strings.Join(lines[:3], "\n"))
		}
		for i, a := range strings.Split(ids[0], "\n") {
			if b := strings.Split(ids[1], "\n")[i]; a == b {
				t.Errorf("both machines have %q, want their own", a)
			}
		}
	})

	t.Run("etc private entries", func(t *testing.T) {
		if _, err := os.Stat("/etc/ssl/private"); err != nil {
			t.Skip(err)
		}
		want := ownerMode(t, "/etc/ssl/private") + "\n"
		for _, m := range machines {
			got := read(t, m, `stat -c '%u:%g %a' /etc/ssl/private; echo "[$(ls -A /etc/ssl/private)][$(ls -A "$(lowerOf /etc)/ssl/private")]"`)
			if got != want+"[][]\n" {
				t.Errorf("%s: got %q, want the host's owner and mode %q and nothing in it", m.Name(), got, want)
			}
		}
	})

	t.Run("var", func(t *testing.T) {
		for _, m := range machines {
			if out := read(t, m, `find "$(lowerOf /var)" -type f`); out != "" {
				t.Errorf("%s: files under the host's /var: %q, want none", m.Name(), out)
			}
		}
		if _, err := os.Stat("/var/lib/postgresql"); err != nil {
			t.Skip("no /var/lib/postgresql on this host: ", err)
		}
		want := ownerMode(t, "/var/lib/postgresql") + "\n"
		for _, m := range machines {
			if got := read(t, m, "stat -c '%u:%g %a' /var/lib/postgresql; ls -A /var/lib/postgresql"); got != want {
				t.Errorf("%s: /var/lib/postgresql: got %q, want the host's owner and mode, empty: %q", m.Name(), got, want)
			}
		}
	})
}

// checkShadow fails when a guest's shadow file shows anything of the host's:
// a host password hash, or a host account's line as the host has it (with
// its aging dates) instead of locked and bare.
func checkShadow(t *testing.T, where, host, guest string) {
	t.Helper()
	lines := strings.Split(guest, "\n")
	var notLocked []string
	for line := range strings.SplitSeq(strings.TrimSpace(host), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 2 {
			continue
		}
		if hash := f[1]; len(hash) > 2 && strings.Contains(guest, hash) {
			t.Errorf("%s has the host's hash of %s", where, f[0])
		}
		if !slices.Contains(lines, f[0]+":*:::::::") {
			notLocked = append(notLocked, f[0])
		}
	}
	if len(notLocked) > 0 {
		t.Errorf("%s: accounts %v are not \"name:*:::::::\"; got\n%s", where, notLocked, guest)
	}
}

// hostHasKey reports whether line is one of the host's public keys.
func hostHasKey(line string) bool {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return false
	}
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		b, _ := os.ReadFile("/etc/ssh/ssh_host_" + t + "_key.pub")
		if strings.Contains(string(b), fields[1]) {
			return true
		}
	}
	return false
}

// ownerMode returns a host path's "uid:gid mode", as stat -c '%u:%g %a'.
func ownerMode(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
}
