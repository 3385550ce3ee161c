package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/image"
	"github.com/vmlab/vmlab/internal/lab"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestPrepareImagesChecksFirst: a bad image reference is a declaration
// problem, found before the store is asked for anything (its directory
// is not even made).
func TestPrepareImagesChecksFirst(t *testing.T) {
	dir := t.TempDir() + "/images"
	m := spec.New("deb")
	m.Image = "bookworm"
	err := lab.PrepareImages(t.Context(), &machine.Boot{}, []machine.Config{{Machine: m}}, &image.Store{Dir: dir}, nil)
	if err == nil || !strings.Contains(err.Error(), `machine deb: parse image "bookworm": no scheme`) {
		t.Errorf("got %v, want the reference's problem, naming the machine", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the store's directory %s was made: the store was asked", dir)
	}
}

// TestNewRefusesUnpreparedImage: a machine declared with an image that
// PrepareImages did not resolve would boot the host's root: New refuses.
func TestNewRefusesUnpreparedImage(t *testing.T) {
	m := spec.New("deb")
	m.Image = "debian:bookworm"
	_, err := lab.New(&machine.Boot{}, t.TempDir(), []machine.Config{{Machine: m}}, nil)
	if err == nil || !strings.Contains(err.Error(), "machine deb: image debian:bookworm was not prepared") {
		t.Errorf("got %v, want the unprepared image refused", err)
	}
}

// TestPrepareImagesRefusesOCIWithoutSystemd: a machine of init =
// "systemd" whose OCI image has no /lib/systemd/systemd is refused before
// it boots, naming the image; one whose image has it (through a merged
// /usr's link) is not.
func TestPrepareImagesRefusesOCIWithoutSystemd(t *testing.T) {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Skip("mkfs.erofs not installed (erofs-utils; scripts/deps)")
	}
	savedUnpack, savedDigest := image.UnpackOCI, image.DigestOCI
	defer func() { image.UnpackOCI, image.DigestOCI = savedUnpack, savedDigest }()
	image.DigestOCI = nil
	image.UnpackOCI = func(_ context.Context, ref image.Ref, dir string) (string, error) {
		if strings.HasSuffix(ref.Path, "bad") {
			return "", fmt.Errorf("opening image %s: no index.json", ref)
		}
		if strings.HasSuffix(ref.Path, "with") {
			os.Symlink("usr/lib", filepath.Join(dir, "lib"))
			os.MkdirAll(filepath.Join(dir, "usr/lib/systemd"), 0o755)
			return "sha256:with", os.WriteFile(filepath.Join(dir, "usr/lib/systemd/systemd"), []byte("x"), 0o755)
		}
		return "sha256:without", os.WriteFile(filepath.Join(dir, "hello"), []byte("x"), 0o755)
	}
	store := &image.Store{Dir: t.TempDir()}
	for _, c := range []struct{ image, want string }{
		{"oci:/layouts/without", `machine web: the image oci:/layouts/without has no /lib/systemd/systemd (init = "systemd" boots the image's systemd): add systemd to the image`},
		{"oci:/layouts/with", ""},
		// Each layer of an error adds only what is new: no "image X: image X".
		{"oci:/layouts/bad", "machine web: opening image oci:/layouts/bad: no index.json"},
	} {
		m := spec.New("web")
		m.Image = c.image
		m.Init = spec.InitSystemd
		err := lab.PrepareImages(t.Context(), &machine.Boot{}, []machine.Config{{Machine: m}}, store, nil)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("PrepareImages of %s under systemd: %v; want %q", c.image, err, c.want)
		}
	}
}
