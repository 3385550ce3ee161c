package oci

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/image"
)

// TestStoreGetsLayout: with this package imported, the image store makes
// a cached file system image of an OCI layout, keyed by the image's
// digest, and takes it from the cache the second time.
func TestStoreGetsLayout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mkfs.erofs (-short runs the tests that need no tools)")
	}
	img := newImage(t, "amd64", layer(t, dir("bin/"), file("bin/hello", "#!/bin/sh\necho hi\n")))
	ref, err := image.ParseRef("oci:" + writeLayout(t, img, "v1") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	store := &image.Store{Dir: t.TempDir(), Logf: t.Logf}
	first, err := store.Get(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(first.Path); err != nil || fi.Size() == 0 || first.FSType != "erofs" {
		t.Fatalf("image %+v: %v, want an erofs file", first, err)
	}
	if want := configDigest(t, img); first.Digest != want {
		t.Errorf("digest %q, want the image's %q", first.Digest, want)
	}
	// The second Get reads no layer: a layout whose layer blob is gone
	// still gives the cached image.
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	if err := os.Remove(filepath.Join(ref.Path, "blobs", d.Algorithm, d.Hex)); err != nil {
		t.Fatal(err)
	}
	second, err := store.Get(context.Background(), ref, nil)
	if err != nil || second.Key != first.Key || second.Path != first.Path {
		t.Errorf("second Get: %+v, %v; want the cached %s", second, err, first.Key)
	}
}
