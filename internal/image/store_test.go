package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// fakeMirror serves a Debian archive's dists/ with bookworm (also as
// stable) and its security suite, and a Packages index of the given names.
func fakeMirror(t *testing.T, packages ...string) *httptest.Server {
	var idx bytes.Buffer
	zw := gzip.NewWriter(&idx)
	for _, p := range packages {
		fmt.Fprintf(zw, "Package: %s\nVersion: 1\nProvides: %s-virtual (= 1)\n\n", p, p)
	}
	zw.Close()
	inRelease := func(codename string) string {
		return "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nCodename: " + codename +
			"\nDate: Sat, 28 Nov 2026 09:12:34 UTC\nSHA256:\n abc 12 main/Release\n"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debian/dists/bookworm/InRelease", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, inRelease("bookworm")) })
	mux.HandleFunc("/debian/dists/stable/InRelease", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, inRelease("bookworm")) })
	mux.HandleFunc("/debian-security/dists/bookworm-security/InRelease", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, inRelease("bookworm-security"))
	})
	mux.HandleFunc("/debian/dists/bookworm/main/binary-amd64/Packages.gz", func(w http.ResponseWriter, _ *http.Request) { w.Write(idx.Bytes()) })
	mux.HandleFunc("/debian/dists/{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<a href="../">../</a><a href="bookworm/">bookworm/</a><a href="sid/">sid/</a><a href="stable/">stable/</a>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// fakeStore is a Store on a fake mirror whose build writes a small root
// and counts its builds.
type fakeStore struct {
	*Store
	mu     sync.Mutex
	builds []plan
	logs   []string
}

func newFakeStore(t *testing.T, srv *httptest.Server) *fakeStore {
	if _, err := exec.LookPath("mkfs.erofs"); err != nil {
		t.Skip("mkfs.erofs not installed (erofs-utils; scripts/deps)")
	}
	fs := &fakeStore{}
	fs.Store = &Store{
		Dir:     t.TempDir(),
		archive: &archive{Mirror: srv.URL + "/debian", Security: srv.URL + "/debian-security"},
		arch:    "amd64",
		Logf: func(format string, args ...any) {
			fs.mu.Lock()
			defer fs.mu.Unlock()
			fs.logs = append(fs.logs, fmt.Sprintf(format, args...))
		},
		build: func(_ context.Context, p plan, root string) error {
			fs.mu.Lock()
			fs.builds = append(fs.builds, p)
			n := len(fs.builds)
			fs.mu.Unlock()
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			return os.WriteFile(filepath.Join(root, "etc", "build"), fmt.Appendf(nil, "build %d of %s\n", n, p.key), 0o644)
		},
	}
	return fs
}

func (fs *fakeStore) nbuilds() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.builds)
}

func (fs *fakeStore) logged(s string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, l := range fs.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func mustRef(t *testing.T, s string) Ref {
	ref, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestGetBuildsOnceAndRebuildsCorrupt(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	s := newFakeStore(t, srv)
	ctx := context.Background()
	img, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"})
	if err != nil {
		t.Fatal(err)
	}
	if img.FSType != "erofs" || img.Ref != "debian:bookworm" || img.Size == 0 || strings.Join(img.Packages, ",") != "curl" {
		t.Errorf("image %+v: want an erofs debian:bookworm with curl", img)
	}
	// "/" of the image is the build's temporary directory: 0755, not 0700.
	if out, err := exec.Command("dump.erofs", "--path=/", img.Path).CombinedOutput(); err == nil && !strings.Contains(string(out), "Access: 0755/") {
		t.Errorf("the image's /: %s; want mode 0755", out)
	}
	if !s.builds[0].security {
		t.Errorf("build plan without the security suite, which the mirror has")
	}
	again, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl", "curl"})
	if err != nil || again.Key != img.Key || s.nbuilds() != 1 {
		t.Fatalf("second Get = %s, %v after %d builds; want %s from the cache, 1 build", again.Key, err, s.nbuilds(), img.Key)
	}
	// Corrupt the file keeping its size: the checksum catches it.
	data, err := os.ReadFile(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	os.Chmod(img.Path, 0o644)
	if err := os.WriteFile(img.Path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"})
	if err != nil || rebuilt.Key != img.Key || s.nbuilds() != 2 {
		t.Fatalf("Get after corruption = %s, %v after %d builds; want %s rebuilt (2 builds)", rebuilt.Key, err, s.nbuilds(), img.Key)
	}
	if !s.logged("cached image " + img.Key + " is corrupt (its SHA-256 does not match its record): rebuilding") {
		t.Errorf("no log line says the cached image is corrupt and rebuilt; logs: %q", s.logs)
	}
	// A missing record is a missing entry: rebuilt.
	os.Remove(recordPath(s.Dir, img.Key))
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"}); err != nil || s.nbuilds() != 3 {
		t.Fatalf("Get without a record: %v after %d builds; want a third build", err, s.nbuilds())
	}
}

func TestGetOffline(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	s := newFakeStore(t, srv)
	ctx := context.Background()
	img, err := s.Get(ctx, mustRef(t, "debian:stable"), []string{"curl"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "debian:bookworm" || img.Asked != "debian:stable" {
		t.Errorf("debian:stable built as Ref %q Asked %q; want debian:bookworm asked as debian:stable", img.Ref, img.Asked)
	}
	srv.Close() // the archive is now unreachable
	for _, ref := range []string{"debian:stable", "debian:bookworm"} {
		got, err := s.Get(ctx, mustRef(t, ref), []string{"curl"})
		if err != nil || got.Key != img.Key {
			t.Errorf("offline Get(%s) = %s, %v; want the cached %s", ref, got.Key, err, img.Key)
		}
	}
	if !s.logged("unreachable") || s.nbuilds() != 1 {
		t.Errorf("offline Gets: %d builds, logs %q; want 1 build and a line saying the archive is unreachable", s.nbuilds(), s.logs)
	}
	// Other packages: nothing cached to fall back on.
	_, err = s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"kmod"})
	if err == nil || !strings.Contains(err.Error(), "no image of it cached") {
		t.Errorf("offline Get of an uncached image: %v; want an error saying nothing is cached", err)
	}
}

func TestGetBadInput(t *testing.T) {
	srv := fakeMirror(t, "curl", "kmod", "passwd")
	s := newFakeStore(t, srv)
	ctx := context.Background()
	_, err := s.Get(ctx, mustRef(t, "debian:bookwrom"), nil)
	if err == nil || !strings.Contains(err.Error(), `no suite "bookwrom"`) || !strings.Contains(err.Error(), "bookworm, sid, stable") {
		t.Errorf("Get of an unknown suite: %v; want an error naming it and listing the archive's suites", err)
	}
	_, err = s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl", "nosuchpkg", "curl-virtual"})
	if err == nil || !strings.Contains(err.Error(), "no package nosuchpkg in bookworm") {
		t.Errorf("Get with a missing package: %v; want an error naming nosuchpkg", err)
	}
	if s.nbuilds() != 0 {
		t.Errorf("%d builds after bad input; want none", s.nbuilds())
	}
	if _, err := s.Get(ctx, mustRef(t, "oci:/nonexistent"), []string{"curl"}); err == nil || !strings.Contains(err.Error(), "debian: images only") {
		t.Errorf("Get of an OCI image with packages: %v; want an error", err)
	}
}

func TestMmdebstrapFailureNamesPackage(t *testing.T) {
	lines := []string{"I: running apt-get update...", "E: Unable to locate package nosuchpkg", "E: apt-get failed"}
	if got := explain(lines); !strings.Contains(got, "no package nosuchpkg") {
		t.Errorf("explain = %q; want it to name nosuchpkg", got)
	}
	if got := explain([]string{"E: mount failed"}); !strings.Contains(got, "E: mount failed") {
		t.Errorf("explain = %q; want the last lines", got)
	}
}

// writeEntry makes a cache entry by hand, used at used.
func writeEntry(t *testing.T, dir, key string, size int, used time.Time) {
	t.Helper()
	path := filepath.Join(dir, key+ext)
	data := bytes.Repeat([]byte{1}, size)
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}
	sum, _ := fileSHA256(path)
	rec := fmt.Sprintf(`{"key":%q,"ref":"debian:bookworm","fstype":"erofs","size":%d,"sha256":%q,"arch":"amd64","recipe":%d}`, key, size, sum, Recipe)
	if err := os.WriteFile(recordPath(dir, key), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, used, used)
	os.Chtimes(recordPath(dir, key), used, used)
}

// threeEntries writes images old, mid and new of 3000 bytes each, used
// 3, 2 and 1 hours before now, and bounds the cache to maxBytes for the
// test.
func threeEntries(t *testing.T, dir string, now time.Time, maxBytes int64) {
	t.Helper()
	writeEntry(t, dir, "debian-bookworm-old", 3000, now.Add(-3*time.Hour))
	writeEntry(t, dir, "debian-bookworm-mid", 3000, now.Add(-2*time.Hour))
	writeEntry(t, dir, "debian-bookworm-new", 3000, now.Add(-time.Hour))
	saved := Limits
	t.Cleanup(func() { Limits = saved })
	Limits = cachefile.Limits{MaxBytes: maxBytes, MaxAge: 24 * time.Hour, Grace: time.Minute}
}

func TestTrimAndRemove(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir}
	now := time.Now()
	threeEntries(t, dir, now, 7000)
	s.trim(dir)
	imgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, img := range imgs {
		keys = append(keys, img.Key)
	}
	if strings.Join(keys, " ") != "debian-bookworm-new debian-bookworm-mid" {
		t.Errorf("after the trim: %q; want the least recently used evicted, most recent first", keys)
	}
	if _, err := os.Stat(recordPath(dir, "debian-bookworm-old")); !os.IsNotExist(err) {
		t.Errorf("the evicted image's record: %v; want it removed", err)
	}
	// One in use by this process is not removed.
	if _, err := s.cached(dir, "debian-bookworm-mid"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("debian-bookworm-mid"); err == nil || !strings.Contains(err.Error(), "uses it") {
		t.Errorf("Remove of an image in use: %v; want a refusal", err)
	}
	if err := s.Remove("debian-bookworm-new"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if err := s.Remove("debian-bookworm-new"); err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Errorf("Remove of a removed image: %v; want no such image", err)
	}
	if imgs, _ := s.List(); len(imgs) != 1 || !imgs[0].InUse {
		t.Errorf("List = %+v; want the one image, in use", imgs)
	}
}

func TestProgress(t *testing.T) {
	var logs []string
	s := &Store{Logf: func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }}
	var in strings.Builder
	in.WriteString("I: running apt-get update...\n")
	for i := range 100 {
		fmt.Fprintf(&in, "Get:%d http://deb.debian.org/debian bookworm/main amd64 pkg%d amd64 1 [1000 B]\n", i+1, i)
		in.WriteString("Unpacking pkg ...\n")
	}
	in.WriteString("W: Download is performed unsandboxed as root as file /x/partial couldn't be accessed by user _apt\n")
	in.WriteString("Fetched 40.2 MB in 6s (6.7 MB/s)\nFetched 40.2 MB in 6s (6.7 MB/s)\nE: Unable to locate package nosuchpkg\n")
	last := s.progress(mustRef(t, "debian:bookworm"), strings.NewReader(in.String()))
	want := []string{
		"image debian:bookworm: mmdebstrap: I: running apt-get update...",
		"image debian:bookworm: downloaded 100 files: Fetched 40.2 MB in 6s (6.7 MB/s)",
		"image debian:bookworm: mmdebstrap: E: Unable to locate package nosuchpkg",
	}
	if strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress logged %q; want %q", logs, want)
	}
	if len(last) != 20 || !strings.Contains(explain(last), "no package nosuchpkg") {
		t.Errorf("progress kept %d last lines (want 20), explained as %q", len(last), explain(last))
	}
}

func TestUnknownSuiteWithoutListing(t *testing.T) {
	mux := http.NewServeMux()
	for alias, codename := range map[string]string{"stable": "trixie", "testing": "forky", "unstable": "sid"} {
		mux.HandleFunc("/debian/dists/"+alias+"/InRelease", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "Codename: %s\nDate: Sat, 28 Nov 2026 09:12:34 UTC\n", codename)
		})
	}
	srv := httptest.NewServer(mux) // no dists/ index, no oldstable
	defer srv.Close()
	s := &Store{Dir: t.TempDir(), archive: &archive{Mirror: srv.URL + "/debian"}, arch: "amd64"}
	_, err := s.Get(context.Background(), mustRef(t, "debian:trixy"), nil)
	want := `no suite "trixy"; it has trixie (stable), forky (testing), sid (unstable)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Get of an unknown suite: %v; want %q", err, want)
	}
}

func TestGetOCI(t *testing.T) {
	srv := fakeMirror(t)
	s := newFakeStore(t, srv)
	saved := UnpackOCI
	defer func() { UnpackOCI = saved }()
	UnpackOCI = nil
	ref := mustRef(t, "oci:/srv/layout:v1")
	if _, err := s.Get(context.Background(), ref, nil); err == nil || !strings.Contains(err.Error(), "image oci:/srv/layout:v1: OCI images are not built into this vmlab") {
		t.Errorf("Get of an OCI image without UnpackOCI: %v; want a clear error", err)
	}
	unpacks := 0
	UnpackOCI = func(_ context.Context, got Ref, dir string) (string, error) {
		unpacks++
		if got != ref {
			t.Errorf("UnpackOCI got %+v, want %+v", got, ref)
		}
		return "sha256:1234", os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644)
	}
	img, err := s.Get(context.Background(), ref, nil)
	if err != nil || img.Digest != "sha256:1234" || img.Ref != ref.String() || !strings.HasPrefix(img.Key, "oci-") {
		t.Fatalf("Get = %+v, %v; want an oci- image of sha256:1234", img, err)
	}
	again, err := s.Get(context.Background(), ref, nil)
	if err != nil || again.Key != img.Key || again.Built != img.Built || unpacks != 2 {
		t.Errorf("second Get = %s built %v, %v after %d unpacks; want the cached %s (built %v), unpacked again to learn its digest",
			again.Key, again.Built, err, unpacks, img.Key, img.Built)
	}
}

// TestRemoveRootUnmounts: a root left with mounts in it (a killed
// mmdebstrap) is unmounted before its files are removed.
func TestRemoveRootUnmounts(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "-t", "tmpfs", "tmpfs", proc).Run(); err != nil {
		t.Skipf("mount a tmpfs (needs root): %v", err)
	}
	keep := filepath.Join(proc, "host-file")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hold the mount through a descriptor: the file in it must survive
	// the removal, unmounted rather than deleted.
	f, err := os.Open(proc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	(&Store{}).removeRoot(root)
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("root after removeRoot: %v; want it removed", err)
	}
	if names, err := f.Readdirnames(-1); err != nil || len(names) != 1 || names[0] != "host-file" {
		t.Errorf("the mount's files after removeRoot: %q, %v; want host-file kept", names, err)
	}
}

func TestStaleRelease(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debian/dists/sid/InRelease", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "Codename: sid\nDate: Fri, 30 Oct 2026 08:08:01 UTC\nValid-Until: Fri, 06 Nov 2026 08:08:01 UTC\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := newFakeStore(t, srv)
	s.archive = &archive{Mirror: srv.URL + "/debian", Security: srv.URL + "/debian-security"}
	_, err := s.Get(context.Background(), mustRef(t, "debian:sid"), nil)
	if want := "is stale: its Release of sid expired on 2026-11-06"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Get with an expired Release: %v; want %q", err, want)
	}
	// A host whose apt does not check expiry builds it, without expiry
	// checks in the build either.
	s.archive.NoValidUntil = true
	if _, err := s.Get(context.Background(), mustRef(t, "debian:sid"), nil); err != nil || s.nbuilds() != 1 || !s.builds[0].archive.NoValidUntil {
		t.Errorf("Get with an expired Release, expiry not checked: %v after %d builds; want one build without the check", err, s.nbuilds())
	}
}
