package hostview

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostFile is one entry of a fake host tree.
type hostFile struct {
	rel      string
	content  string // a directory when it ends the path with "/"
	mode     os.FileMode
	uid, gid int
	link     string // a symbolic link to link when set
}

// fakeHost is a host root with secrets everywhere the view must hide them.
var fakeHost = []hostFile{
	{rel: "etc/", mode: 0o755},
	{rel: "etc/shadow", content: "root:$6$rootsalt$roothash:19000:0:99999:7:::\n# comment\nalice:$y$j9T$alicehash:19001:0:99999:7:::\n", mode: 0o640, gid: 42},
	{rel: "etc/shadow-", content: "root:$6$oldsalt$oldhash:18000:0:99999:7:::\n", mode: 0o640, gid: 42},
	{rel: "etc/gshadow", content: "root:*::\nsudo:$6$groupsalt$grouphash:alice:alice,bob\n", mode: 0o640, gid: 42},
	{rel: "etc/machine-id", content: "3d1219c7c4c5404aaa1f6d2a48adfda4\n", mode: 0o444},
	{rel: "etc/hostname", content: "host\n", mode: 0o644},
	{rel: "etc/sudoers", content: "root ALL=(ALL) ALL\n", mode: 0o440},
	{rel: "etc/security/", mode: 0o755},
	{rel: "etc/security/opasswd", content: "alice:1000:1:$6$old$oldpw\n", mode: 0o600},
	{rel: "etc/ssl/", mode: 0o755},
	{rel: "etc/ssl/certs/", mode: 0o755},
	{rel: "etc/ssl/certs/ca.pem", content: "CERT\n", mode: 0o644},
	{rel: "etc/ssl/private/", mode: 0o710, gid: 43},
	{rel: "etc/ssl/private/snakeoil.key", content: "HOST TLS KEY\n", mode: 0o640, gid: 43},
	{rel: "etc/ssh/", mode: 0o755},
	{rel: "etc/ssh/ssh_config", content: "Host *\n", mode: 0o644},
	{rel: "etc/ssh/sshd_config.d/", mode: 0o755},
	{rel: "etc/ssh/sshd_config.d/local.conf", content: "PermitRootLogin no\n", mode: 0o644},
	{rel: "etc/ssh/ssh_host_ed25519_key", content: "HOST ED25519 PRIVATE KEY\n", mode: 0o600},
	{rel: "etc/ssh/ssh_host_ed25519_key.pub", content: "ssh-ed25519 HOSTPUBLIC root@host\n", mode: 0o644},
	{rel: "var/", mode: 0o755},
	{rel: "var/run", link: "/run"},
	{rel: "var/tmp/", mode: 0o1777},
	{rel: "var/tmp/leftover", content: "someone's file\n", mode: 0o644},
	{rel: "var/backups/", mode: 0o755},
	{rel: "var/backups/shadow.bak", content: "root:$6$bak$bakhash:1:::::\n", mode: 0o600},
	{rel: "var/lib/", mode: 0o755},
	{rel: "var/lib/shells.state", content: "/bin/sh\n", mode: 0o644},
	{rel: "var/lib/postgresql/", mode: 0o755, uid: 1234, gid: 1234},
	{rel: "var/lib/postgresql/15/", mode: 0o755, uid: 1234, gid: 1234},
	{rel: "var/lib/postgresql/15/main/", mode: 0o700, uid: 1234, gid: 1234},
	{rel: "var/lib/postgresql/15/main/PG_VERSION", content: "15\n", mode: 0o600, uid: 1234, gid: 1234},
	{rel: "var/lib/private/", mode: 0o700},
	{rel: "var/lib/dbus/", mode: 0o755},
	{rel: "var/lib/dbus/machine-id", content: "3d1219c7c4c5404aaa1f6d2a48adfda4\n", mode: 0o644},
	{rel: "var/log/", mode: 0o755},
	{rel: "var/log/auth.log", content: "sshd: Accepted password for alice\n", mode: 0o640, gid: 4},
	{rel: "var/log/postgresql/", mode: 0o1775, uid: 1234, gid: 1234},
	{rel: "var/mail/", mode: 0o2775, gid: 8},
	{rel: "var/mail/alice", content: "From: bank\n", mode: 0o660, uid: 1000, gid: 8},
}

// needRoot skips a test that gives files other owners or mounts.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the view gives its files the host's owners and is mounted in a mount namespace")
	}
}

// makeHost writes files under a new temporary root.
func makeHost(t *testing.T, files []hostFile) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f.rel)
		var err error
		switch {
		case f.link != "":
			err = os.Symlink(f.link, p)
		case strings.HasSuffix(f.rel, "/"):
			err = os.Mkdir(p, 0o700)
		default:
			err = os.WriteFile(p, []byte(f.content), 0o600)
		}
		if err == nil && f.link == "" {
			if err = os.Chown(p, f.uid, f.gid); err == nil {
				err = os.Chmod(p, f.mode)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// owner returns a file's owner and permission bits as "uid:gid mode".
func owner(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
}

func TestPrepareGeneratedFiles(t *testing.T) {
	needRoot(t)
	root := makeHost(t, fakeHost)
	dir := filepath.Join(t.TempDir(), "view")
	v, err := Prepare(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, target, want string
	}{
		{"shadow: names only, every account locked", "etc/shadow", "root:*:::::::\nalice:*:::::::\n"},
		{"shadow backup", "etc/shadow-", "root:*:::::::\n"},
		{"gshadow: password locked, members kept", "etc/gshadow", "root:*::\nsudo:*:alice:alice,bob\n"},
		{"emptied secret", "etc/security/opasswd", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bindSource(t, v, filepath.Join(root, tt.target))
			if got := readFile(t, src); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got, want := owner(t, src), owner(t, filepath.Join(root, tt.target)); got != want {
				t.Errorf("owner and mode %s, want the host's %s", got, want)
			}
		})
	}
	t.Run("machine-id", func(t *testing.T) {
		id := readFile(t, bindSource(t, v, filepath.Join(root, "etc/machine-id")))
		if len(id) != 33 || id == readFile(t, filepath.Join(root, "etc/machine-id")) {
			t.Errorf("got %q, want 32 hex digits and a newline, not the host's", id)
		}
	})
	t.Run("emptied directory", func(t *testing.T) {
		src := bindSource(t, v, filepath.Join(root, "etc/ssl/private"))
		if names := dirNames(t, src); len(names) != 0 {
			t.Errorf("got %v, want an empty directory", names)
		}
		if got, want := owner(t, src), owner(t, filepath.Join(root, "etc/ssl/private")); got != want {
			t.Errorf("owner and mode %s, want the host's %s", got, want)
		}
	})
	t.Run("shared as they are", func(t *testing.T) {
		for _, rel := range []string{"etc/hostname", "etc/sudoers", "etc/ssl/certs", "etc/ssl/certs/ca.pem", "etc/ssl"} {
			if slices.ContainsFunc(v.Binds, func(b Bind) bool { return b.Target == filepath.Join(root, rel) }) {
				t.Errorf("/%s is replaced, want the host's", rel)
			}
		}
	})
}

func TestPrepareSSH(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name     string
		extra    []hostFile
		wantKeys []string
	}{
		{"host without sshd", nil, []string{"ecdsa", "ed25519"}},
		{"host with sshd", []hostFile{{rel: "usr/", mode: 0o755}, {rel: "usr/sbin/", mode: 0o755}, {rel: "usr/sbin/sshd", mode: 0o755}},
			[]string{"ecdsa", "ed25519", "rsa"}},
		{"host with an rsa key", []hostFile{{rel: "etc/ssh/ssh_host_rsa_key", content: "HOST RSA\n", mode: 0o600}},
			[]string{"ecdsa", "ed25519", "rsa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := makeHost(t, append(slices.Clone(fakeHost), tt.extra...))
			dir := filepath.Join(t.TempDir(), "view")
			v, err := Prepare(root, dir)
			if err == nil {
				err = v.Wait()
			}
			if err != nil {
				t.Fatal(err)
			}
			ssh := bindSource(t, v, filepath.Join(root, "etc/ssh"))
			var keys []string
			for _, n := range dirNames(t, ssh) {
				if kind, ok := strings.CutPrefix(n, "ssh_host_"); ok && strings.HasSuffix(n, "_key") {
					keys = append(keys, strings.TrimSuffix(kind, "_key"))
				}
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("host keys %v, want %v", keys, tt.wantKeys)
			}
			for _, k := range keys {
				priv := readFile(t, keyPath(ssh, k))
				if strings.Contains(priv, "HOST") || !strings.HasPrefix(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
					t.Errorf("%s key: got %q, want a generated OpenSSH private key", k, priv)
				}
				if got := owner(t, keyPath(ssh, k)); got != "0:0 600" {
					t.Errorf("%s key: owner and mode %s, want 0:0 600", k, got)
				}
			}
			if got := readFile(t, filepath.Join(ssh, "sshd_config.d/local.conf")); got != "PermitRootLogin no\n" {
				t.Errorf("sshd_config.d/local.conf: got %q, want the host's", got)
			}
			// Booted again, the machine keeps its identity.
			ed := readFile(t, keyPath(ssh, "ed25519"))
			id := readFile(t, filepath.Join(dir, "machine-id"))
			if _, err := Prepare(root, dir); err != nil {
				t.Fatal(err)
			}
			if readFile(t, keyPath(ssh, "ed25519")) != ed || readFile(t, filepath.Join(dir, "machine-id")) != id {
				t.Error("a second Prepare in the same directory made a new key or machine-id")
			}
			// Another machine gets its own.
			other, err := Prepare(root, filepath.Join(t.TempDir(), "other"))
			if err != nil {
				t.Fatal(err)
			}
			if readFile(t, keyPath(bindSource(t, other, filepath.Join(root, "etc/ssh")), "ed25519")) == ed {
				t.Error("two machines got the same ed25519 key")
			}
		})
	}
}

func TestSkeleton(t *testing.T) {
	needRoot(t)
	root := makeHost(t, fakeHost)
	v, err := Prepare(root, filepath.Join(t.TempDir(), "view"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Source("/var") != v.Var || v.Source("/usr") != "/usr" {
		t.Errorf("Source: /var -> %s, /usr -> %s; want %s and /usr", v.Source("/var"), v.Source("/usr"), v.Var)
	}
	var files []string
	filepath.WalkDir(v.Var, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if len(files) != 0 {
		t.Errorf("the skeleton has files %v, want none", files)
	}
	for _, dir := range []string{"", "lib", "lib/postgresql", "lib/private", "log/postgresql", "mail", "tmp", "backups"} {
		got, err := os.Lstat(filepath.Join(v.Var, dir))
		if err != nil {
			t.Errorf("/var/%s: %v", dir, err)
			continue
		}
		if o, want := owner(t, filepath.Join(v.Var, dir)), owner(t, filepath.Join(root, "var", dir)); o != want || !got.IsDir() {
			t.Errorf("/var/%s: %s, want a directory owned like the host's: %s", dir, o, want)
		}
	}
	if names := dirNames(t, filepath.Join(v.Var, "lib/postgresql")); len(names) != 0 {
		t.Errorf("/var/lib/postgresql has %v, want nothing (two levels only)", names)
	}
	for link, want := range map[string]string{"run": "/run", "lib/dbus/machine-id": "/etc/machine-id"} {
		if got, err := os.Readlink(filepath.Join(v.Var, link)); got != want {
			t.Errorf("/var/%s links to %q (%v), want %q", link, got, err, want)
		}
	}
}

// TestApply mounts the view in a mount namespace of a locked thread and
// reads the host's paths through it, then checks the test's own namespace
// never saw the binds.
func TestApply(t *testing.T) {
	needRoot(t)
	root := makeHost(t, fakeHost)
	v, err := Prepare(root, filepath.Join(t.TempDir(), "view"))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ shadow, opasswd, hostKey string }
	read := func() seen {
		b, _ := os.ReadFile(filepath.Join(root, "etc/shadow"))
		o, _ := os.ReadFile(filepath.Join(root, "etc/security/opasswd"))
		k, _ := os.ReadFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
		return seen{string(b), string(o), string(k)}
	}
	inside := make(chan seen)
	errs := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errs <- err
			close(inside)
			return
		}
		err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		if err == nil {
			err = v.Apply()
		}
		errs <- err
		inside <- read()
	}()
	got := <-inside
	if err := <-errs; err != nil {
		t.Fatalf("mount the view: %v", err)
	}
	if want := (seen{"root:*:::::::\nalice:*:::::::\n", "", ""}); got.shadow != want.shadow || got.opasswd != "" || strings.Contains(got.hostKey, "HOST") {
		t.Errorf("through the view: got %+v, want shadow %q, no opasswd, no host key", got, want.shadow)
	}
	if outside := read(); !strings.Contains(outside.shadow, "roothash") || outside.opasswd == "" {
		t.Errorf("the binds leaked into the test's namespace: %+v", outside)
	}
}

// TestKeysLoad checks the generated keys with OpenSSH: ssh-keygen derives
// each public key from its private key.
func TestKeysLoad(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed: nothing to check the key format with")
	}
	dir := t.TempDir()
	for name, gen := range keyTypes {
		t.Run(name, func(t *testing.T) {
			k, err := gen("root@test")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			os.WriteFile(path, k.private, 0o600)
			out, err := exec.Command(keygen, "-y", "-f", path).CombinedOutput()
			if err != nil {
				t.Fatalf("ssh-keygen -y: %v: %s", err, out)
			}
			fields := strings.Fields(string(k.public))
			if got, want := strings.Fields(string(out)), fields[:2]; !slices.Equal(got[:2], want) {
				t.Errorf("ssh-keygen derived %q, want %q", got, want)
			}
		})
	}
}

// bindSource returns what the view binds over target.
func bindSource(t *testing.T, v *View, target string) string {
	t.Helper()
	for _, b := range v.Binds {
		if b.Target == target {
			return b.Source
		}
	}
	t.Fatalf("nothing is bound over %s; binds: %+v", target, v.Binds)
	return ""
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// BenchmarkPrepareHost prepares this host's view, as every boot does after
// the first (the keys and machine-id are kept).
func BenchmarkPrepareHost(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := filepath.Join(b.TempDir(), "view")
	for b.Loop() {
		if _, err := Prepare("/", dir); err != nil {
			b.Fatal(err)
		}
	}
}
