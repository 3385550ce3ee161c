package examples

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vmlab/vmlab"
)

// TestRegistryImage: a machine whose root is pulled from a registry, here
// an in-process one on loopback (plain HTTP) holding the busybox image
// TestOCILayout builds, pushed by the test.
func TestRegistryImage(t *testing.T) {
	bootsVMs(t)
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("no static busybox on the host (apt install busybox-static)")
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials: anonymous pulls
	root := t.TempDir()
	mkRoot(t, root, busybox)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/busybox:v1"
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, treeImage(t, root)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}

	lab := vmlab.New(t)
	box := lab.Machine("box", vmlab.Image(ref))
	lab.StartAll(t)
	if got := box.Succeed(t, "cat /etc/made-by-test && readlink /bin/sh"); got != "built by TestOCILayout\nbusybox\n" {
		t.Errorf("box: got %q, want the image's file and its busybox shell", got)
	}
}
