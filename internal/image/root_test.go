package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRootPrivate: a build's root is 0755 (the guest's "/") inside a
// 0700 directory of its own, in a cache made 0700 even when it was not;
// removeRoot removes both.
func TestNewRootPrivate(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "images")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	root, release, err := newRoot(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for p, want := range map[string]os.FileMode{cache: 0o700, filepath.Dir(root): 0o700, root: 0o755} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: got %v (err %v), want mode %v", p, st.Mode().Perm(), err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "sudo"), []byte("x"), 0o4755); err != nil {
		t.Fatal(err)
	}
	(&Store{Logf: t.Logf}).removeRoot(root)
	ents, err := os.ReadDir(cache)
	for _, e := range ents {
		if e.Name() != ".sweep.lock" {
			t.Errorf("cache after removeRoot holds %s (err %v), want only the sweep's lock", e.Name(), err)
		}
	}
}

// TestNewRootRefusesCacheOfOthers: a cache another user owns could be
// opened up by them: it is an error naming the owner.
func TestNewRootRefusesCacheOfOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	cache := filepath.Join(t.TempDir(), "images")
	if err := os.Mkdir(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cache, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newRoot(cache); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("newRoot in a cache of uid 65534: got error %v, want one naming the owner", err)
	}
}
