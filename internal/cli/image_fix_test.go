package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageCommandLine: flags before the action, several keys to rm, and a
// line saying what is wrong with a bad command line, not only the usage.
func TestImageCommandLine(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "debian-bookworm-aaaa", "debian:bookworm", `"curl"`)
	writeImage(t, dir, "debian-bookworm-bbbb", "debian:bookworm", "")
	writeImage(t, dir, "debian-trixie-cccc", "debian:trixie", "")
	writeImage(t, dir, "debian-trixie-dddd", "debian:trixie", "")
	os.Chmod(filepath.Join(dir, "debian-trixie-dddd.erofs"), 0o644)
	os.Truncate(filepath.Join(dir, "debian-trixie-dddd.erofs"), 10)
	code, stdout, stderr := run("image", "-dir", dir, "ls")
	if code != exitOK || !strings.Contains(stdout, "4 images") {
		t.Errorf("image -dir DIR ls: exit %d, stdout %q, stderr %q; want the 4 images", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "(!) debian-trixie-dddd: corrupt: 10 bytes, its record says") || strings.Count(stdout, "(!)") != 2 {
		t.Errorf("image ls with a truncated image: %q; want it marked corrupt, the others not", stdout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "-dir", dir}, "vmlab: image: no action: give ls, build or rm"},
		{[]string{"image", "rm", "-dir", dir}, "vmlab: image: rm takes keys or references"},
		{[]string{"image", "ls", "extra", "-dir", dir}, "vmlab: image: ls takes no arguments"},
		{[]string{"image", "frob", "-dir", dir}, `vmlab: image: unknown action "frob"`},
	} {
		code, _, stderr := run(c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "usage: vmlab image") {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q and the usage", c.args, code, stderr, exitUsage, c.want)
		}
	}
	code, stdout, stderr = run("image", "rm", "-dir", dir, "debian-bookworm-aaaa", "debian:trixie", "debian-nope")
	if code != exitFail || !strings.Contains(stdout, "removed debian-bookworm-aaaa") || !strings.Contains(stdout, "removed debian-trixie-cccc") ||
		!strings.Contains(stdout, "removed debian-trixie-dddd") || !strings.Contains(stderr, "remove image debian-nope: no such image") {
		t.Errorf("image rm of two and a missing one: exit %d, stdout %q, stderr %q; want both removed, the missing one named", code, stdout, stderr)
	}
	if imgs, _ := filepath.Glob(filepath.Join(dir, "*.erofs")); len(imgs) != 1 {
		t.Errorf("%d images left, want 1", len(imgs))
	}
}

// TestImageRemoveByDigest: a docker save tarball of the image cached from
// a layout is the same entry, found by rm as build finds it.
func TestImageRemoveByDigest(t *testing.T) {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Skip("mkfs.erofs not installed (erofs-utils; scripts/deps)")
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	tar := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("vmlab.test/app:1")
	if err := tarball.WriteToFile(tar, tag, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if code, _, stderr := run("image", "build", "-dir", dir, "oci:"+lay); code != exitOK {
		t.Fatalf("image build oci:%s: exit %d, %s", lay, code, stderr)
	}
	// This process's build holds it in use: found, and kept.
	_, _, stderr := run("image", "rm", "-dir", dir, "docker-archive:"+tar)
	if !strings.Contains(stderr, "remove image oci-") || !strings.Contains(stderr, "uses it") {
		t.Errorf("image rm docker-archive:FILE of an image cached from a layout: %q; want it found (and kept: in use)", stderr)
	}
}
