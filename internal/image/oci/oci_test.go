package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// ent is one layer entry: a tar header and, for a file, its content.
type ent struct {
	hdr  tar.Header
	body string
}

func dir(n string) ent { return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755}} }
func file(n, body string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(body))}, body: body}
}
func symlink(n, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: target, Mode: 0o777}}
}
func hardlink(n, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: n, Linkname: target}}
}

// layer makes an uncompressed tar of ents into a layer.
func layer(t testing.TB, ents ...ent) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing tar header %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("writing tar entry %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatalf("making layer: %v", err)
	}
	return l
}

// newImage stacks layers, bottom first, into an image for os/arch.
func newImage(t testing.TB, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: arch})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatalf("stacking layers: %v", err)
	}
	return img
}

// writeLayout writes img into a new OCI layout, tagged tag, and returns its
// directory.
func writeLayout(t testing.TB, img v1.Image, tag string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(d, empty.Index)
	if err != nil {
		t.Fatalf("writing layout: %v", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		t.Fatalf("adding image to layout: %v", err)
	}
	return d
}

func configDigest(t testing.TB, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// The layers of the image most tests unpack: a whiteout, an opaque
// directory, links, modes, owners, a fifo and a device node (left out).
func richLayers(t *testing.T) []v1.Layer {
	suid := file("usr/bin/su", "su")
	suid.hdr.Mode = 0o4755
	owned := file("home/u/note", "mine")
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1001
	null := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600}}
	capped := file("usr/bin/ping", "ping")
	capped.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.vmlab": "x"}
	base := layer(t,
		dir("etc/"), file("etc/a", "a"), file("etc/b", "b"),
		dir("opt/x/"), file("opt/x/old", "old"), dir("opt/x/sub/"), file("opt/x/sub/old2", "old2"),
		dir("usr/bin/"), file("./usr/bin/tool", "tool"), suid, capped,
		symlink("bin", "usr/bin"), hardlink("usr/bin/tool2", "usr/bin/tool"),
		dir("home/u/"), owned, null, fifo,
	)
	top := layer(t,
		file("etc/.wh.a", ""),
		dir("opt/x/"), file("opt/x/new", "new"), file("opt/x/.wh..wh..opq", ""),
		file("etc/b", "b2"),
	)
	rnd, err := random.Layer(4096, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	return []v1.Layer{base, rnd, top}
}

func TestUnpackLayoutTree(t *testing.T) {
	img := newImage(t, "amd64", richLayers(t)...)
	lay := writeLayout(t, img, "v1")
	root := filepath.Join(t.TempDir(), "root")
	got, err := Unpack(context.Background(), "oci:"+lay+":v1", root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if want := configDigest(t, img); got != want {
		t.Errorf("digest: got %s, want the config digest %s", got, want)
	}
	checkRichTree(t, root)
}

func checkRichTree(t testing.TB, root string) {
	t.Helper()
	content := map[string]string{ // "" means absent
		"etc/a": "", "etc/b": "b2",
		"opt/x/old": "", "opt/x/sub": "", "opt/x/new": "new",
		"usr/bin/tool": "tool", "bin/tool": "tool", "usr/bin/tool2": "tool",
		"home/u/note": "mine",
	}
	for p, want := range content {
		b, err := os.ReadFile(filepath.Join(root, p))
		switch {
		case want == "" && !os.IsNotExist(err):
			t.Errorf("%s: got %q, err %v; want it gone", p, b, err)
		case want != "" && string(b) != want:
			t.Errorf("%s: got %q, err %v; want %q", p, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "bin")); l != "usr/bin" {
		t.Errorf("bin: got link %q, err %v; want usr/bin", l, err)
	}
	st1, _ := os.Stat(filepath.Join(root, "usr/bin/tool"))
	st2, _ := os.Stat(filepath.Join(root, "usr/bin/tool2"))
	if st1 == nil || st2 == nil || !os.SameFile(st1, st2) {
		t.Errorf("usr/bin/tool2 is not a hard link of usr/bin/tool")
	}
	if st, err := os.Stat(filepath.Join(root, "usr/bin/su")); err != nil || st.Mode() != 0o755|fs.ModeSetuid {
		t.Errorf("usr/bin/su: got mode %v (err %v), want u+s 0755", modeOf(st), err)
	}
	if st, err := os.Stat(filepath.Join(root, "home/u/note")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 1000 || st.Sys().(*syscall.Stat_t).Gid != 1001 {
		t.Errorf("home/u/note: not owned by 1000:1001 (err %v)", err)
	}
	// Never a device node on the host: the guest's /dev is devtmpfs.
	if st, err := os.Lstat(filepath.Join(root, "dev/null")); !os.IsNotExist(err) {
		t.Errorf("dev/null: got mode %v (err %v), want no device node made", modeOf(st), err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(root, "usr/bin/ping"), "user.vmlab", buf); err != nil || string(buf[:n]) != "x" {
		t.Errorf("usr/bin/ping: attribute user.vmlab is %q (err %v), want x", buf[:max(n, 0)], err)
	}
	if st, err := os.Lstat(filepath.Join(root, "run/fifo")); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("run/fifo: got mode %v (err %v), want a fifo", modeOf(st), err)
	}
}

func modeOf(st fs.FileInfo) fs.FileMode {
	if st == nil {
		return 0
	}
	return st.Mode()
}

func TestUnpackDockerArchive(t *testing.T) {
	img := newImage(t, "amd64", richLayers(t)...)
	file := filepath.Join(t.TempDir(), "img.tar")
	tag, err := name.NewTag("vmlab.test/rich:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatalf("writing docker-archive: %v", err)
	}
	root := t.TempDir()
	got, err := Unpack(context.Background(), "docker-archive:"+file, root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if want := configDigest(t, img); got != want {
		t.Errorf("digest: got %s, want %s (the same image as a layout must have the same key)", got, want)
	}
	checkRichTree(t, root)
}

// A scratch image of one static binary has no shell and unpacks all the same.
func TestUnpackScratch(t *testing.T) {
	bin := file("hello", "\x7fELF static")
	bin.hdr.Mode = 0o755
	img := newImage(t, "amd64", layer(t, bin))
	root := t.TempDir()
	lay := writeLayout(t, img, "latest")
	if _, err := Unpack(context.Background(), "oci:"+lay, root); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != "hello" {
		t.Errorf("root holds %v, want only hello", ents)
	}
	if st, err := os.Stat(filepath.Join(root, "hello")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("hello: mode %v, err %v; want 0755", modeOf(st), err)
	}
}

// Layers that try to write outside the root fail and write nothing there.
func TestUnpackRefusesEscape(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		layers [][]ent
	}{
		{"dotdot", [][]ent{{file("../../../../../../.."+outside+"/pwned", "x")}}},
		{"dotdot inside", [][]ent{{dir("a/"), file("a/../../pwned", "x")}}},
		{"absolute symlink as dir", [][]ent{{symlink("lib", outside)}, {file("lib/pwned", "x")}}},
		{"relative symlink as dir", [][]ent{{dir("a/"), symlink("a/up", "../../../../../../../.."+outside)}, {file("a/up/pwned", "x")}}},
		{"symlink then parent", [][]ent{{symlink("up", "../../../../../../..")}, {file("up"+outside+"/pwned", "x")}}},
		{"hard link out", [][]ent{{hardlink("h", "../../../../../../.."+victim)}}},
		{"whiteout through symlink", [][]ent{{symlink("lib", outside)}, {file("lib/.wh.victim", "")}}},
		{"opaque through symlink", [][]ent{{symlink("lib", outside)}, {file("lib/.wh..wh..opq", "")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ls []v1.Layer
			for _, es := range c.layers {
				ls = append(ls, layer(t, es...))
			}
			lay := writeLayout(t, newImage(t, "amd64", ls...), "x")
			_, err := Unpack(context.Background(), "oci:"+lay, t.TempDir())
			if err == nil {
				t.Errorf("Unpack: no error, want one")
			}
			t.Logf("error: %v", err)
			if _, serr := os.Stat(filepath.Join(outside, "pwned")); serr == nil {
				t.Errorf("a layer wrote %s", filepath.Join(outside, "pwned"))
			}
			if b, rerr := os.ReadFile(victim); string(b) != "safe" {
				t.Errorf("%s: got %q (err %v), want it untouched", victim, b, rerr)
			}
		})
	}
}

// A symlink replaced by a file in a later layer is replaced, not written through.
func TestUnpackReplacesSymlink(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := newImage(t, "amd64", layer(t, symlink("f", outside)), layer(t, file("f", "new")))
	root := t.TempDir()
	if _, err := Unpack(context.Background(), "oci:"+writeLayout(t, img, "x"), root); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "safe" {
		t.Errorf("%s: got %q, want it untouched", outside, b)
	}
	if st, err := os.Lstat(filepath.Join(root, "f")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("f: mode %v, err %v; want a regular file", modeOf(st), err)
	}
}

func TestUnpackPicksPlatform(t *testing.T) {
	amd := newImage(t, "amd64", layer(t, file("arch", "amd64")))
	arm := newImage(t, "arm64", layer(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	d := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(d, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: "multi"})); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	got, err := Unpack(context.Background(), "oci:"+d+":multi", root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "arch")); string(b) != "amd64" {
		t.Errorf("arch: got %q, want amd64", b)
	}
	if want := configDigest(t, amd); got != want {
		t.Errorf("digest: got %s, want %s", got, want)
	}
	if dg, err := Digest(context.Background(), "oci:"+d+":multi"); err != nil || dg != got {
		t.Errorf("Digest: got %s, %v; want %s", dg, err, got)
	}
}

func TestUnpackRefuses(t *testing.T) {
	arm := newImage(t, "arm64", layer(t, file("arch", "arm64")))
	armOnly := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}},
	)
	armIdx := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(armIdx, armOnly)
	if err != nil {
		t.Fatal(err)
	}
	_ = p
	good := newImage(t, "amd64", layer(t, file("a", "a")))
	twoTags := writeLayout(t, good, "one")
	if p, err := layout.FromPath(twoTags); err != nil {
		t.Fatal(err)
	} else if err := p.AppendImage(good, layout.WithAnnotations(map[string]string{refNameAnnotation: "two"})); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, ref string
		want      []string // substrings of the error
	}{
		{"other arch image", "oci:" + writeLayout(t, arm, "arm"), []string{"linux/arm64", "amd64 image"}},
		{"other arch index", "oci:" + armIdx, []string{"it has linux/arm64, linux/arm/v7"}},
		{"unknown tag", "oci:" + twoTags + ":three", []string{`no image tagged "three"`, "one, two"}},
		{"two tags, none named", "oci:" + twoTags, []string{"lists 2 images", "oci:DIR:TAG"}},
		{"no layout", "oci:" + t.TempDir(), []string{"reading OCI layout"}},
		{"no archive", "docker-archive:" + filepath.Join(t.TempDir(), "none.tar"), []string{"no such file"}},
		{"bad reference", "Not A Ref!", []string{"not an image reference"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Unpack(context.Background(), c.ref, t.TempDir())
			if err == nil {
				t.Fatalf("Unpack(%s): no error, want one", c.ref)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Unpack(%s): error %q does not say %q", c.ref, err, w)
				}
			}
		})
	}
}

// A blob whose content does not match its digest is refused.
func TestUnpackRefusesCorruptBlob(t *testing.T) {
	img := newImage(t, "amd64", layer(t, file("a", "real")))
	other := layer(t, file("a", "fake"))
	cases := []struct {
		name    string
		blob    func() v1.Hash
		content func() []byte
		want    string
	}{
		{"layer", func() v1.Hash { ls, _ := img.Layers(); h, _ := ls[0].Digest(); return h },
			func() []byte { rc, _ := other.Compressed(); b, _ := io.ReadAll(rc); return b }, "layer is corrupt"},
		{"config", func() v1.Hash { h, _ := img.ConfigName(); return h },
			func() []byte {
				b, _ := img.RawConfigFile()
				return bytes.Replace(b, []byte("amd64"), []byte("amd65"), 1)
			}, "config is corrupt"},
		{"manifest", func() v1.Hash { h, _ := img.Digest(); return h },
			func() []byte { b, _ := img.RawManifest(); return append(b, ' ') }, "image manifest is corrupt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lay := writeLayout(t, img, "x")
			h := c.blob()
			if err := os.WriteFile(filepath.Join(lay, "blobs", h.Algorithm, h.Hex), c.content(), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Unpack(context.Background(), "oci:"+lay, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Unpack: got error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestUnpackWantsEmptyDir(t *testing.T) {
	lay := writeLayout(t, newImage(t, "amd64", layer(t, file("a", "a"))), "x")
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "mine"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(context.Background(), "oci:"+lay, root)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Unpack into a non-empty dir: got %v, want a not-empty error", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "mine")); string(b) != "keep" {
		t.Errorf("mine: got %q, want it kept", b)
	}
}

// BenchmarkUnpack unpacks a layout of 5,000 files of 20 KiB (100 MB) in two
// layers, the second replacing half the first's files.
func BenchmarkUnpack(b *testing.B) {
	body := strings.Repeat("vmlab-oci", 20<<10/9)
	var lower, upper []ent
	for i := range 5000 {
		p := filepath.Join("usr/share/d"+strconv.Itoa(i/100), "f"+strconv.Itoa(i))
		lower = append(lower, file(p, body))
		if i%2 == 0 {
			upper = append(upper, file(p, body))
		}
	}
	lay := writeLayout(b, newImage(b, "amd64", layer(b, lower...), layer(b, upper...)), "x")
	b.SetBytes(int64(7500 * len(body)))
	for b.Loop() {
		root := filepath.Join(b.TempDir(), "root")
		if _, err := Unpack(context.Background(), "oci:"+lay, root); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
}

// A registry reference is pulled (here from an in-process registry) and its
// index's linux/amd64 image unpacked.
func TestUnpackRegistry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials: anonymous pulls
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	amd := newImage(t, "amd64", layer(t, file("arch", "amd64")))
	arm := newImage(t, "arm64", layer(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	armIdx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	for ref, img := range map[string]v1.ImageIndex{host + "/multi:1": idx, host + "/arm:1": armIdx} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(r, img); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}

	root := t.TempDir()
	got, err := Unpack(context.Background(), "docker://"+host+"/multi:1", root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "arch")); string(b) != "amd64" {
		t.Errorf("arch: got %q, want amd64", b)
	}
	if want := configDigest(t, amd); got != want {
		t.Errorf("digest: got %s, want %s", got, want)
	}
	_, err = Unpack(context.Background(), host+"/arm:1", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "it has linux/arm64") {
		t.Errorf("Unpack of an arm64-only index: got %v, want an error naming linux/arm64", err)
	}
	_, err = Unpack(context.Background(), host+"/none:1", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "fetching manifest from registry "+host) {
		t.Errorf("Unpack of a missing repository: got %v, want an error naming the registry", err)
	}
}

// Whiteouts of what is not there, and a "./" root entry, are no error.
func TestUnpackWhiteoutOfNothing(t *testing.T) {
	img := newImage(t, "amd64", layer(t, dir("./"), file("a", "a")), layer(t, file("no/such/.wh.x", ""), file(".wh.b", "")))
	root := t.TempDir()
	if _, err := Unpack(context.Background(), "oci:"+writeLayout(t, img, "x"), root); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a")); string(b) != "a" {
		t.Errorf("a: got %q, want a", b)
	}
}

func TestUnpackArchiveOfTwoImages(t *testing.T) {
	a := newImage(t, "amd64", layer(t, file("a", "a")))
	b := newImage(t, "amd64", layer(t, file("b", "b")))
	ta, _ := name.NewTag("vmlab.test/a:1")
	tb, _ := name.NewTag("vmlab.test/b:1")
	f := filepath.Join(t.TempDir(), "two.tar")
	if err := tarball.MultiRefWriteToFile(f, map[name.Reference]v1.Image{ta: a, tb: b}); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(context.Background(), "docker-archive:"+f, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "one image") {
		t.Errorf("Unpack: got %v, want an error asking for one image", err)
	}
}

// An index whose entries name no platform is read by the images' configs.
func TestUnpackIndexWithoutPlatforms(t *testing.T) {
	amd := newImage(t, "amd64", layer(t, file("arch", "amd64")))
	arm := newImage(t, "arm64", layer(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: arm}, mutate.IndexAddendum{Add: amd})
	d := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(d, idx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	_, err := Unpack(context.Background(), "oci:"+d, root)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "arch")); string(b) != "amd64" {
		t.Errorf("arch: got %q, want amd64", b)
	}
}
