package oci

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestStoreRefusesOCIWithoutRoot: mkfs.erofs 1.5 would record the
// builder's uid as every file's owner, so a user other than root gets an
// error saying so, not a root with wrong owners.
func TestStoreRefusesOCIWithoutRoot(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	img := newImage(t, "amd64", layer(t, dir("etc/"), file("etc/shadow", "root:*:1::::::\n")))
	ref, err := image.ParseRef("oci:" + writeLayout(t, img, "v1") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	store := &image.Store{Dir: t.TempDir(), Logf: t.Logf}
	_, err = store.Get(context.Background(), ref, nil)
	if err == nil || !strings.Contains(err.Error(), "needs root") || !strings.Contains(err.Error(), "erofs-utils 1.7") {
		t.Fatalf("Get as uid 1000: got error %v, want one saying it needs root and what would lift that", err)
	}
}

// TestStoreLogsLeftOut: what unpacking leaves out reaches the store's
// progress log.
func TestStoreLogsLeftOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mkfs.erofs (-short runs the tests that need no tools)")
	}
	null := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	img := newImage(t, "amd64", layer(t, dir("dev/"), null, file("a", "a")))
	ref, err := image.ParseRef("oci:" + writeLayout(t, img, "v1") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	store := &image.Store{Dir: t.TempDir(), Logf: func(f string, args ...any) { logs = append(logs, fmt.Sprintf(f, args...)) }}
	if _, err := store.Get(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, "left out 1 device nodes") }) {
		t.Errorf("logs %q: want a line saying the device node was left out", logs)
	}
}
