package examples

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vmlab/vmlab"
)

// TestOCILayout: a machine whose root is an OCI image layout the test
// builds itself, from a directory tree it makes (a static busybox as
// /bin/sh and a file), beside a host-root machine on one VLAN. Machines
// are numbered by sorted name: box 1, host 2.
func TestOCILayout(t *testing.T) {
	bootsVMs(t)
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("no static busybox on the host (apt install busybox-static)")
	}
	root := t.TempDir()
	mkRoot(t, root, busybox)
	dir := writeOCILayout(t, treeImage(t, root), "v1")

	lab := vmlab.New(t)
	box := lab.Machine("box", vmlab.Image("oci:"+dir+":v1"))
	host := lab.Machine("host")
	lab.StartAll(t)

	if got := box.Succeed(t, "cat /etc/made-by-test"); got != "built by TestOCILayout\n" {
		t.Errorf("box's /etc/made-by-test: got %q, want the test's file", got)
	}
	// The shell is the image's busybox, not the host's: the host root's
	// /bin/sh is not busybox.
	if got := box.Succeed(t, "readlink /bin/sh && echo $((6*7))"); got != "busybox\n42\n" {
		t.Errorf("box's shell: got %q, want /bin/sh -> busybox and 42", got)
	}
	box.Succeed(t, "ping -c 1 -W 5 192.168.1.2")
	host.Succeed(t, "ping -c 1 -W 5 box")
	host.Fail(t, "test -e /etc/made-by-test")
}

// mkRoot makes a container's root in dir: busybox as /bin/busybox, /bin/sh
// and the applets the test uses as links to it, and a file of the test's.
func mkRoot(t *testing.T, dir, busybox string) {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "cat", "echo", "ping", "readlink", "test"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/made-by-test"), []byte("built by TestOCILayout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// treeImage packs the tree at root into a one-layer linux/amd64 image.
func treeImage(t *testing.T, root string) v1.Image {
	t.Helper()
	data := tarTree(t, root)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatalf("making the layer: %v", err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatalf("adding the layer: %v", err)
	}
	return img
}

// writeOCILayout writes img as an OCI image layout tagged tag, and
// returns the layout's directory.
func writeOCILayout(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("writing the layout: %v", err)
	}
	tagged := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})
	if err := p.AppendImage(img, tagged); err != nil {
		t.Fatalf("adding the image to the layout: %v", err)
	}
	return dir
}

// tarTree returns the tree at root as a tar stream, paths relative to it.
func tarTree(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		// Owned by root and of a fixed time: the same tree is the same
		// image at every run, so vmlab's cache (keyed by its digest) keeps one.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("packing %s: %v", root, err)
	}
	return buf.Bytes()
}
