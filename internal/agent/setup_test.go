package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// fakeRoot is a guest root in a temporary directory: an /etc/group with
// "wheel", and /proc/sys/net/ipv4/ip_forward holding "0".
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range map[string]string{
		"etc/group":                    "root:x:0:\nwheel:x:10:\ncarol:x:1001:\n",
		"etc/passwd":                   "root:x:0:0:root:/root:/bin/bash\ncarol:x:1001:1001::/home/carol:/bin/sh\n",
		"proc/sys/net/ipv4/ip_forward": "0\n",
		"etc/old.conf":                 "an older and longer content\n",
	} {
		p := filepath.Join(root, path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// recorder stands in for the tools: it records each command line and fails
// the ones fail names.
type recorder struct {
	ran  []string
	fail string
}

func (r *recorder) run(_ context.Context, name string, args ...string) error {
	line := strings.Join(append([]string{name}, args...), " ")
	r.ran = append(r.ran, line)
	if r.fail != "" && strings.Contains(line, r.fail) {
		return errors.New(name + ": exit status 1: it failed")
	}
	return nil
}

func TestApplySetup(t *testing.T) {
	type file struct {
		path, content string
		mode          os.FileMode
	}
	tests := []struct {
		name    string
		req     agentproto.Setup
		content string
		fail    string   // tool command line that fails
		ran     []string // tool command lines, in order
		files   []file   // under the root, after the setup
		wantErr string   // "" for none
	}{{
		name: "everything",
		req: agentproto.Setup{
			Groups:  []string{"audio", "wheel"},
			Users:   []agentproto.Account{{Name: "alice", Groups: []string{"wheel", "audio"}}, {Name: "bob", Shell: "/bin/bash"}},
			Modules: []string{"dummy", "bonding"},
			Sysctls: []agentproto.Sysctl{{Key: "net.ipv4.ip_forward", Value: "1"}},
			Files: []agentproto.SetupFile{
				{Path: "/etc/a/b/c.conf", Size: 5},
				{Path: "/usr/local/bin/tool", Mode: 0o755, Size: 4},
				{Path: "/etc/empty", Mode: 0o600},
				{Path: "/etc/old.conf", Mode: 0o640, Size: 3},
				{Path: "/etc/shared", Mode: 0o666}, // more than the umask lets open give
				{Path: "/usr/local/bin/suid", Mode: 0o4755},
			},
		},
		content: "hello#!sh\x00\xff\x01",
		ran: []string{
			"groupadd -- audio",
			"useradd -m -U -s /bin/sh -G wheel,audio -- alice",
			"useradd -m -U -s /bin/bash -- bob",
			"modprobe -a dummy bonding",
		},
		files: []file{
			{"proc/sys/net/ipv4/ip_forward", "1", 0o600},
			{"etc/a/b/c.conf", "hello", 0o644},
			{"usr/local/bin/tool", "#!sh", 0o755},
			{"etc/empty", "", 0o600},
			{"etc/old.conf", "\x00\xff\x01", 0o640},
			{"etc/shared", "", 0o666},
			{"usr/local/bin/suid", "", 0o755 | os.ModeSetuid},
		},
	}, {
		// useradd -U fails on an existing group: the boot failed.
		name: "user named as a group",
		req: agentproto.Setup{Groups: []string{"alice"}, Users: []agentproto.Account{
			{Name: "alice"}, {Name: "wheel"}, {Name: "bob", Groups: []string{"alice"}}}},
		ran: []string{
			"groupadd -- alice",
			"useradd -m -g alice -s /bin/sh -- alice",
			"useradd -m -g wheel -s /bin/sh -- wheel", // in the guest's /etc/group
			"useradd -m -U -s /bin/sh -G alice -- bob",
		},
	}, {
		name:    "group fails",
		req:     agentproto.Setup{Groups: []string{"bad:name"}},
		fail:    "bad:name",
		ran:     []string{"groupadd -- bad:name"},
		wantErr: "group bad:name: groupadd: exit status 1: it failed",
	}, {
		name:    "user fails and stops the setup",
		req:     agentproto.Setup{Users: []agentproto.Account{{Name: "bad:name"}, {Name: "eve"}}, Modules: []string{"dummy"}},
		fail:    "-- bad:name",
		ran:     []string{"useradd -m -U -s /bin/sh -- bad:name"},
		wantErr: "user bad:name: useradd: exit status 1",
	}, {
		// A disk kept from an earlier boot has the users already:
		// useradd would refuse them and fail the boot.
		name: "existing users",
		req: agentproto.Setup{Groups: []string{"wheel"}, Users: []agentproto.Account{
			{Name: "carol", Groups: []string{"wheel"}}, {Name: "root", Shell: "/bin/bash"}}},
		ran: []string{
			"usermod -s /bin/sh -a -G wheel -- carol",
			"usermod -s /bin/bash -- root",
		},
	}, {
		name:    "module fails",
		req:     agentproto.Setup{Modules: []string{"nosuch"}},
		fail:    "nosuch",
		ran:     []string{"modprobe -a nosuch"},
		wantErr: "load modules nosuch: modprobe: exit status 1",
	}, {
		name:    "unknown sysctl",
		req:     agentproto.Setup{Sysctls: []agentproto.Sysctl{{Key: "net.ipv4.nope", Value: "1"}}},
		wantErr: "sysctl net.ipv4.nope: open ",
	}, {
		name:    "sysctl outside /proc/sys",
		req:     agentproto.Setup{Sysctls: []agentproto.Sysctl{{Key: "../../etc/group", Value: "x"}}},
		wantErr: "sysctl ../../etc/group: not a sysctl name",
	}, {
		name:    "relative file path",
		req:     agentproto.Setup{Files: []agentproto.SetupFile{{Path: "etc/x", Size: 1}}},
		content: "x",
		wantErr: "file etc/x: path is not absolute",
	}, {
		name:    "content ends early",
		req:     agentproto.Setup{Files: []agentproto.SetupFile{{Path: "/etc/x", Size: 10}}},
		content: "short",
		wantErr: "file /etc/x: content ended before 10 bytes",
	}, {
		name:    "parent is a file",
		req:     agentproto.Setup{Files: []agentproto.SetupFile{{Path: "/etc/group/x", Size: 1}}},
		content: "x",
		wantErr: "file /etc/group/x: mkdir ",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t)
			rec := &recorder{fail: tt.fail}
			err := applySetup(t.Context(), setupEnv{root: root, run: rec.run}, &tt.req, strings.NewReader(tt.content))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if strings.Join(rec.ran, "\n") != strings.Join(tt.ran, "\n") {
				t.Errorf("ran\n%s\nwant\n%s", strings.Join(rec.ran, "\n"), strings.Join(tt.ran, "\n"))
			}
			for _, f := range tt.files {
				p := filepath.Join(root, f.path)
				b, err := os.ReadFile(p)
				fi, serr := os.Stat(p)
				if err != nil || serr != nil {
					t.Errorf("%s: %v", f.path, errors.Join(err, serr))
					continue
				}
				if mode := fi.Mode() & (os.ModePerm | os.ModeSetuid); string(b) != f.content || mode != f.mode {
					t.Errorf("%s: got %q mode %v, want %q mode %v", f.path, b, mode, f.content, f.mode)
				}
			}
		})
	}
}
