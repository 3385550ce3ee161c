package rootpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolve: the paths of an image's root (the agent's mount points,
// /lib/systemd/systemd) resolve through its
// symlinks within the root, absolute ones included (usr-merged images have
// lib -> /usr/lib in some builders), never into the initramfs's tree.
func TestResolve(t *testing.T) {
	root := filepath.Join(t.TempDir(), "newroot")
	for _, d := range []string{"usr/lib", "var", "opt/real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"lib": "/usr/lib", "lib64": "usr/lib", "var/run": "../run", "up": "../../..",
		"opt/here": ".", "loop": "loop", "opt/abs": "/opt/real",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ path, want, err string }{
		{"/lib/modules", "usr/lib/modules", ""},
		{"lib/modules/6.1", "usr/lib/modules/6.1", ""},
		{"/lib64", "usr/lib", ""},
		{"/var/run/vmlab", "run/vmlab", ""},
		{"/up/etc", "etc", ""},
		{"/opt/here/here/abs/x", "opt/real/x", ""},
		{"/../../etc", "etc", ""},
		{"/", "", ""},
		{"/loop/x", "", "more than 40 symlinks"},
	} {
		got, err := Resolve(root, tc.path)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Resolve(%q): got %q, %v; want error %q", tc.path, got, err, tc.err)
			}
		case err != nil || got != filepath.Join(root, tc.want):
			t.Errorf("Resolve(%q): got %q, %v; want %q", tc.path, got, err, filepath.Join(root, tc.want))
		}
	}
}
