package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMkdirInRoot: a mount point is made where the root's own symlinks
// lead (an image's lib -> /usr/lib), not in the initramfs's tree.
func TestMkdirInRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "newroot")
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	dir, err := mkdirInRoot(root, "/lib/modules", 0o755)
	if err != nil || dir != filepath.Join(root, "usr/lib/modules") {
		t.Fatalf("mkdirInRoot(/lib/modules): got %q, %v", dir, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("%s: got %v, want a directory", dir, err)
	}
}
