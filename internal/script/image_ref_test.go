package script

import (
	"os"
	"path/filepath"
	"testing"
)

// TestImagePathRelativeToFile: the path of an oci: or docker-archive:
// image is relative to the test file's directory, as a share's is, not to
// the working directory vmlab runs in.
func TestImagePathRelativeToFile(t *testing.T) {
	fixtureHost(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct{ image, want string }{
		{"oci:layout:v1", "oci:" + filepath.Join(dir, "tests", "layout") + ":v1"},
		{"oci:../layouts/app", "oci:" + filepath.Join(dir, "layouts", "app")},
		{"docker-archive:app.tar", "docker-archive:" + filepath.Join(dir, "tests", "app.tar")},
		{"oci:/abs/layout:v1", "oci:/abs/layout:v1"},
		{"debian:bookworm", "debian:bookworm"},
	} {
		f, err := Load(filepath.Join("tests", "img.star"), []byte(`m = machine(image = "`+tc.image+`")
def test():
    pass
`))
		if err != nil {
			t.Fatalf("image %q: %v", tc.image, err)
		}
		if got := f.Specs[0].Image; got != tc.want {
			t.Errorf("image %q: got %q, want %q", tc.image, got, tc.want)
		}
	}
}
