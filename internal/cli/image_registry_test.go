package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// vmlab image build, ls and rm with a registry reference, from an
// in-process registry on loopback.
func TestImageCommandRegistry(t *testing.T) {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Skip("mkfs.erofs not installed (erofs-utils; scripts/deps)")
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:v1"
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.ParseReference(ref)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, stdout, stderr := run("image", "build", "-dir", dir, ref)
	if code != exitOK || !strings.Contains(stdout, ref) || !strings.Contains(stderr, "pulling sha256:") {
		t.Fatalf("image build %s: exit %d, stdout %q, stderr %q; want it pulled and named", ref, code, stdout, stderr)
	}
	if code, stdout, _ := run("image", "ls", "-dir", dir); code != exitOK || !strings.Contains(stdout, "1 images") || !strings.Contains(stdout, ref) {
		t.Errorf("image ls: exit %d, stdout %q; want the image of %s", code, stdout, ref)
	}
	// rm finds it by its reference; this process's build holds it in use.
	if _, _, stderr := run("image", "rm", "-dir", dir, ref); !strings.Contains(stderr, "remove image oci-") || !strings.Contains(stderr, "uses it") {
		t.Errorf("image rm %s: stderr %q; want the image found by its reference (and kept: this process uses it)", ref, stderr)
	}
}
