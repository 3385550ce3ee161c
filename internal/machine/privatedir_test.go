package machine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateDir: a machine's directory is made 0700, an existing one of
// ours made private; a link, or a directory another user made first (where
// the machine's sockets would be reachable by them), is refused.
func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "m")
	if err := privateDir(fresh); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if err := privateDir(open); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{fresh, open} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	link := filepath.Join(base, "link")
	os.Symlink(open, link)
	if err := privateDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a link: got %v, want it refused", err)
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o777)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := privateDir(theirs); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
			t.Errorf("another user's directory: got %v, want it refused", err)
		}
	}
}
