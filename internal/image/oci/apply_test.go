package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// rawLayer makes a layer of the tar stream b as it is.
func rawLayer(t testing.TB, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatalf("making layer: %v", err)
	}
	return l
}

// layerBytes is the tar stream layer writes, for tests that append to it.
func layerBytes(t testing.TB, ents ...ent) []byte {
	t.Helper()
	rc, err := layer(t, ents...).Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnpackBoundsSize(t *testing.T) {
	// testdata/sparse.tar: a 10 KiB PAX sparse archive of a 1 GiB file
	// holding 4 bytes at 512 MiB, made by GNU tar (truncate -s 1G big;
	// tar --sparse --format=posix -cf sparse.tar big).
	sparse, err := os.ReadFile("testdata/sparse.tar")
	if err != nil {
		t.Fatal(err)
	}
	big := file("big", strings.Repeat("x", 2<<20))
	for _, tc := range []struct {
		name  string
		layer v1.Layer
		max   int64
		want  string
	}{
		{"a file over the cap", layer(t, dir("usr/"), big), 1 << 20, "cap of 1 MiB"},
		{"a sparse file counts its full size", rawLayer(t, sparse), 64 << 20, "cap of 64 MiB"},
		{"files over the cap together", layer(t, file("a", strings.Repeat("a", 600<<10)), file("b", strings.Repeat("b", 600<<10))), 1 << 20, "cap of 1 MiB"},
		{"the default cap and a sparse file within it", rawLayer(t, sparse), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lay := writeLayout(t, newImage(t, "amd64", tc.layer), "v1")
			root := filepath.Join(t.TempDir(), "root")
			ref := "oci:" + lay + ":v1"
			_, err := Options{MaxBytes: tc.max}.Unpack(context.Background(), ref, root)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Unpack: %v", err)
				}
				// The holes stay holes.
				st, err := os.Stat(filepath.Join(root, "big"))
				if err != nil || st.Size() != 1<<30 || st.Sys().(*syscall.Stat_t).Blocks*512 > 1<<20 {
					t.Errorf("big: got %v (err %v), want 1 GiB with under 1 MiB allocated", st, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "image "+ref+" unpacks to more than") {
				t.Fatalf("Unpack: got error %v, want one naming the image and %q", err, tc.want)
			}
			var used int64
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					st, _ := os.Stat(p)
					used += st.Sys().(*syscall.Stat_t).Blocks * 512
				}
				return nil
			})
			if used > tc.max {
				t.Errorf("the refused unpack wrote %d bytes, more than the cap %d", used, tc.max)
			}
		})
	}
}

func TestUnpackBoundsFreeSpace(t *testing.T) {
	// A file system with 16 MiB free: it, not the cap, bounds the unpack.
	defer func(f func(string, *unix.Statfs_t) error) { statfs = f }(statfs)
	statfs = func(path string, st *unix.Statfs_t) error {
		err := unix.Statfs(path, st)
		st.Bavail = uint64(16<<20) / uint64(st.Bsize)
		return err
	}
	lay := writeLayout(t, newImage(t, "amd64", rawLayer(t, mustRead(t, "testdata/sparse.tar"))), "v1")
	_, err := Unpack(context.Background(), "oci:"+lay+":v1", filepath.Join(t.TempDir(), "root"))
	if err == nil || !strings.Contains(err.Error(), "the 16 MiB free on the file system") {
		t.Fatalf("Unpack: got error %v, want one naming the free space", err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnpackBoundsTrailingData(t *testing.T) {
	// What follows a layer's end marker is hashed, not written: a stream of
	// zeros there (a gzip bomb's) must not be read without end.
	b := append(layerBytes(t, file("a", "a")), make([]byte, 2<<20)...)
	lay := writeLayout(t, newImage(t, "amd64", rawLayer(t, b)), "v1")
	_, err := Unpack(context.Background(), "oci:"+lay+":v1", filepath.Join(t.TempDir(), "root"))
	if err == nil || !strings.Contains(err.Error(), "after its end") {
		t.Fatalf("Unpack: got error %v, want one about the data after the layer's end", err)
	}
}

// cancelAfter is a context canceled from its n-th Err call on: a test
// cancels an unpack in the middle of an entry without guessing a time.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestUnpackCanceledInsideEntry(t *testing.T) {
	const size = 64 << 20
	lay := writeLayout(t, newImage(t, "amd64", layer(t, file("big", strings.Repeat("x", size)))), "v1")
	root := filepath.Join(t.TempDir(), "root")
	ctx := &cancelAfter{Context: context.Background()}
	ctx.n.Store(20) // the entry loop's check and the first reads
	_, err := Unpack(ctx, "oci:"+lay+":v1", root)
	if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) {
		t.Fatalf("Unpack: got error %v, want canceled", err)
	}
	if st, err := os.Stat(filepath.Join(root, "big")); err == nil && st.Size() >= size {
		t.Errorf("big: %d bytes written after the cancel, want the copy stopped", st.Size())
	}
}

func TestUnpackLeavesOutDevices(t *testing.T) {
	disk := ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/vda", Mode: 0o666, Devmajor: 253, Devminor: 0}}
	null := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	lay := writeLayout(t, newImage(t, "amd64", layer(t, dir("dev/"), disk, null, file("etc/a", "a"))), "v1")
	root := filepath.Join(t.TempDir(), "root")
	var logs []string
	o := Options{Logf: func(f string, args ...any) { logs = append(logs, fmt.Sprintf(f, args...)) }}
	if _, err := o.Unpack(context.Background(), "oci:"+lay+":v1", root); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	for _, p := range []string{"dev/vda", "dev/null"} {
		if st, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s: got mode %v (err %v), want no device node on the host", p, modeOf(st), err)
		}
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "left out 2 device nodes") {
		t.Errorf("logs: got %q, want one line saying 2 device nodes were left out", logs)
	}
}

// The unpack as a user other than root runs in a child test process as
// nobody (65534): the helper-process pattern.
const asNobodyEnv = "VMLAB_OCI_TEST_AS_NOBODY"

func TestUnpackWithoutRoot(t *testing.T) {
	if ref := os.Getenv(asNobodyEnv); ref != "" {
		var logs []string
		o := Options{Logf: func(f string, args ...any) { logs = append(logs, fmt.Sprintf(f, args...)) }}
		if _, err := o.Unpack(context.Background(), ref, os.Getenv(asNobodyEnv+"_DIR")); err != nil {
			fmt.Printf("unpack error: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("%s\n", strings.Join(logs, "\n"))
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the unpack as nobody")
	}
	capped := file("usr/bin/ping", "ping")
	capped.hdr.Mode = 0o4755
	capped.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	lib := dir("usr/lib/")
	lib.hdr.Mode = 0o555
	top := dir("usr/lib/")
	top.hdr.Mode = 0o555
	img := newImage(t, "amd64",
		layer(t, dir("usr/"), dir("usr/bin/"), capped, lib, file("usr/lib/x", "x")),
		layer(t, top, file("usr/lib/y", "y"), file("usr/lib/.wh.x", "")))
	// Everything nobody reads or writes is in a directory it may enter.
	base, err := os.MkdirTemp("", "oci-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	lay := writeLayout(t, img, "v1")
	if err := exec.Command("cp", "-a", lay, filepath.Join(base, "layout")).Run(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("chmod", "-R", "a+rX", filepath.Join(base, "layout")).Run(); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("cp", os.Args[0], filepath.Join(base, "oci.test")).Run(); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "root")
	cmd := exec.Command(filepath.Join(base, "oci.test"), "-test.run=^TestUnpackWithoutRoot$")
	cmd.Env = append(os.Environ(), asNobodyEnv+"=oci:"+filepath.Join(base, "layout")+":v1", asNobodyEnv+"_DIR="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unpacking as nobody: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "left out 1 privileged attributes") {
		t.Errorf("unpack output: got %q, want it to say 1 privileged attribute was left out", out)
	}
	for p, want := range map[string]fs.FileMode{"usr/lib": fs.ModeDir | 0o555, "usr/lib/y": 0o644, "usr/bin/ping": fs.ModeSetuid | 0o755} {
		if st, err := os.Lstat(filepath.Join(root, p)); err != nil || st.Mode() != want {
			t.Errorf("%s: got mode %v (err %v), want %v", p, modeOf(st), err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/lib/x")); !os.IsNotExist(err) {
		t.Errorf("usr/lib/x: got err %v, want it deleted by the upper layer's whiteout", err)
	}
}
