package image

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// testMirror is an archive whose files and failures a test changes as it
// goes: bookworm (also as stable) and bookworm-security, and an empty
// Packages index.
type testMirror struct {
	mu     sync.Mutex
	files  map[string]string // by URL path
	status map[string]int    // by URL path: an error status instead
	srv    *httptest.Server
}

func inRelease(codename, date string) string {
	return "Origin: Debian\nCodename: " + codename + "\nDate: " + date + "\nSHA256:\n abc 12 main/Release\n"
}

func newTestMirror(t *testing.T) *testMirror {
	m := &testMirror{files: map[string]string{
		"/debian/dists/bookworm/InRelease":                     inRelease("bookworm", "Sat, 28 Nov 2026 09:12:34 UTC"),
		"/debian/dists/stable/InRelease":                       inRelease("bookworm", "Sat, 28 Nov 2026 09:12:34 UTC"),
		"/debian-security/dists/bookworm-security/InRelease":   inRelease("bookworm-security", "Sun, 29 Nov 2026 10:00:00 UTC"),
		"/debian/dists/bookworm/main/binary-amd64/Packages.gz": "",
	}, status: map[string]int{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if code := m.status[r.URL.Path]; code != 0 {
			http.Error(w, "failing", code)
			return
		}
		data, ok := m.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, data)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *testMirror) set(path, data string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if data == "" {
		delete(m.files, path)
	} else {
		m.files[path] = data
	}
}

func (m *testMirror) fail(path string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status[path] = code
}

// TestCodenameStaysInTheCache: the Codename of an InRelease (plain HTTP,
// unchecked) names the key, hence files: one that is not a suite name is
// refused, and nothing is written outside the cache.
func TestCodenameStaysInTheCache(t *testing.T) {
	m := newTestMirror(t)
	m.set("/debian/dists/bookworm/InRelease", inRelease("/../../escaped", "Sat, 28 Nov 2026 09:12:34 UTC"))
	s := newFakeStore(t, m.srv)
	top := t.TempDir()
	s.Dir = filepath.Join(top, "a", "images")
	_, err := s.Get(context.Background(), mustRef(t, "debian:bookworm"), nil)
	if err == nil || !strings.Contains(err.Error(), `malformed InRelease: Codename "/../../escaped" is not a suite name`) {
		t.Errorf("Get with a Codename that escapes: %v; want an error saying it is not a suite name", err)
	}
	var outside []string
	filepath.Walk(top, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(p, s.Dir+"/") {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) > 0 || s.nbuilds() != 0 {
		t.Errorf("files outside the cache %q, %d builds; want none", outside, s.nbuilds())
	}
	for _, key := range []string{"debian-/../x", "..", "a/b", ".lock", ""} {
		if checkKey(key) == nil {
			t.Errorf("checkKey(%q) = nil; want a refusal", key)
		}
	}
	if _, err := readRecord(s.Dir, "../escaped"); err == nil || !strings.Contains(err.Error(), "not an image key") {
		t.Errorf("readRecord of ../escaped: %v; want a refusal", err)
	}
}

// TestSecuritySuite: only a missing -security suite means none; another
// failure is not silently a build without security fixes, and the
// security suite's Release is part of the key.
func TestSecuritySuite(t *testing.T) {
	m := newTestMirror(t)
	s := newFakeStore(t, m.srv)
	ctx := context.Background()
	const secPath = "/debian-security/dists/bookworm-security/InRelease"
	m.fail(secPath, http.StatusBadGateway)
	_, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err == nil || !strings.Contains(err.Error(), "the archive "+m.srv.URL+"/debian-security fails (no image of it cached") ||
		!strings.Contains(err.Error(), "502") || s.nbuilds() != 0 {
		t.Fatalf("Get with the security archive answering 502: %v after %d builds; want an error naming it, no build", err, s.nbuilds())
	}
	m.fail(secPath, 0)
	img, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil || !s.builds[0].security || !img.Security.Equal(time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("Get = %+v, %v; want a build with the security suite of 2026-11-29", img, err)
	}
	// Failing now, with the image cached: the offline fallback, saying why.
	m.fail(secPath, http.StatusBadGateway)
	again, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil || again.Key != img.Key || !s.logged("the archive "+m.srv.URL+"/debian-security fails (") || s.nbuilds() != 1 {
		t.Errorf("Get with the security archive failing, image cached: %s, %v, %d builds, logs %q; want the cached image, said so",
			again.Key, err, s.nbuilds(), s.logs)
	}
	m.fail(secPath, 0)
	// New security fixes: a new image.
	m.set(secPath, inRelease("bookworm-security", "Tue, 01 Dec 2026 10:00:00 UTC"))
	newer, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil || newer.Key == img.Key || s.nbuilds() != 2 {
		t.Errorf("Get after a security update: %s, %v after %d builds; want a new image (2 builds), not %s", newer.Key, err, s.nbuilds(), img.Key)
	}
	// No security suite at all (404): built without it, another key.
	m.set(secPath, "")
	none, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil || s.nbuilds() != 3 || s.builds[2].security || none.Key == newer.Key || !none.Security.IsZero() {
		t.Errorf("Get without a security suite: %+v, %v after %d builds; want a third build without it", none, err, s.nbuilds())
	}
}

// TestTrimKeepsRecordsOfUsedImages: a trim evicts image files only (with
// their records), never the record of an image in use; orphaned records
// go in the sweep, and an image file without a record is listed.
func TestTrimKeepsRecordsOfUsedImages(t *testing.T) {
	s := newFakeStore(t, fakeMirror(t, "curl", "jq"))
	ctx := context.Background()
	saved := Limits
	defer func() { Limits = saved }()
	a, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(a.Path, past, past)
	os.Chtimes(recordPath(s.Dir, a.Key), past, past)
	Limits = cachefile.Limits{MaxBytes: 1, MaxAge: 30 * 24 * time.Hour, Grace: 10 * time.Minute}
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"jq"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(recordPath(s.Dir, a.Key)); err != nil {
		t.Errorf("the record of the image in use after a trim: %v; want it kept", err)
	}
	imgs, _ := s.List()
	if len(imgs) != 2 {
		t.Errorf("List after the trim: %d images; want both (both in use)", len(imgs))
	}
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), []string{"curl"}); err != nil || s.nbuilds() != 2 {
		t.Errorf("Get of the image in use again: %v after %d builds; want it cached (2 builds)", err, s.nbuilds())
	}

	// An orphaned record goes; an image file without a record is listed.
	dir := t.TempDir()
	st := &Store{Dir: dir}
	writeEntry(t, dir, "debian-bookworm-orphan", 100, time.Now())
	os.Remove(filepath.Join(dir, "debian-bookworm-orphan"+ext))
	writeEntry(t, dir, "debian-bookworm-norecord", 100, time.Now())
	os.Remove(recordPath(dir, "debian-bookworm-norecord"))
	writeEntry(t, dir, "debian-bookworm-short", 100, time.Now())
	os.Chmod(filepath.Join(dir, "debian-bookworm-short"+ext), 0o644)
	os.Truncate(filepath.Join(dir, "debian-bookworm-short"+ext), 50)
	imgs, err = st.List()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(recordPath(dir, "debian-bookworm-orphan")); !os.IsNotExist(err) {
		t.Errorf("an orphaned record after a sweep: %v; want it removed", err)
	}
	problems := map[string]string{}
	for _, img := range imgs {
		problems[img.Key] = img.Problem
	}
	if len(imgs) != 2 || !strings.HasPrefix(problems["debian-bookworm-norecord"], "no record") ||
		!strings.HasPrefix(problems["debian-bookworm-short"], "corrupt: 50 bytes, its record says 100") {
		t.Errorf("List = %q; want the file without a record and the truncated one, each with its problem", problems)
	}
	if err := st.Remove("debian-bookworm-norecord"); err != nil {
		t.Errorf("Remove of an image without a record: %v", err)
	}
}

// TestAliasIsItsCodename: debian:stable is read again as its codename,
// so a stale dists/stable does not make another image of the same suite;
// offline, debian:stable finds the image built as its codename.
func TestAliasIsItsCodename(t *testing.T) {
	m := newTestMirror(t)
	m.set("/debian/dists/stable/InRelease", inRelease("bookworm", "Sat, 21 Nov 2026 09:12:34 UTC")) // a proxy's stale copy
	s := newFakeStore(t, m.srv)
	ctx := context.Background()
	byName, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil {
		t.Fatal(err)
	}
	byAlias, err := s.Get(ctx, mustRef(t, "debian:stable"), nil)
	if err != nil || byAlias.Key != byName.Key || s.nbuilds() != 1 {
		t.Fatalf("Get(debian:stable) = %s, %v after %d builds; want debian:bookworm's %s, one build", byAlias.Key, err, s.nbuilds(), byName.Key)
	}
	// A build of debian:stable says debian:stable on every line.
	other := newFakeStore(t, m.srv)
	if _, err := other.Get(ctx, mustRef(t, "debian:stable"), []string{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range other.logs {
		if !strings.HasPrefix(l, "image debian:stable: ") {
			t.Errorf("progress of a debian:stable build: %q; want every line about debian:stable", l)
		}
	}
	m.srv.Close()
	offline, err := s.Get(ctx, mustRef(t, "debian:stable"), nil)
	if err != nil || offline.Key != byName.Key {
		t.Errorf("offline Get(debian:stable) = %s, %v; want %s, built as debian:bookworm", offline.Key, err, byName.Key)
	}
}

// TestCorruptSaidSo: offline, a corrupt cached image is said to be, not
// "no image cached".
func TestCorruptSaidSo(t *testing.T) {
	m := newTestMirror(t)
	s := newFakeStore(t, m.srv)
	ctx := context.Background()
	img, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(img.Path)
	data[len(data)/2] ^= 0xff
	os.Chmod(img.Path, 0o644)
	os.WriteFile(img.Path, data, 0o444)
	m.srv.Close()
	_, err = s.Get(ctx, mustRef(t, "debian:bookworm"), nil)
	want := "is unreachable, and cached image " + img.Key + " is corrupt (its SHA-256 does not match its record): nothing usable offline"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("offline Get of a corrupt image: %v; want %q", err, want)
	}
}

// TestArchiveTroubleNamed: the offline fallback says "unreachable" only
// when the archive was; a malformed InRelease is said to be.
func TestArchiveTroubleNamed(t *testing.T) {
	m := newTestMirror(t)
	s := newFakeStore(t, m.srv)
	ctx := context.Background()
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil); err != nil {
		t.Fatal(err)
	}
	m.set("/debian/dists/bookworm/InRelease", "<html>captive portal</html>\n")
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil); err != nil {
		t.Fatal(err)
	}
	if !s.logged("serves a malformed InRelease") || s.logged("unreachable") {
		t.Errorf("fallback on a malformed InRelease logged %q; want it said malformed, not unreachable", s.logs)
	}
	m.srv.Close()
	if _, err := s.Get(ctx, mustRef(t, "debian:bookworm"), nil); err != nil || !s.logged("/debian is unreachable (") {
		t.Errorf("Get with the archive down: %v, logs %q; want the cached image, the archive said unreachable", err, s.logs)
	}
}

func TestHasSystemd(t *testing.T) {
	mk := func(t *testing.T, links map[string]string, file string, mode os.FileMode) string {
		root := t.TempDir()
		for name, target := range links {
			os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
		if file != "" {
			os.MkdirAll(filepath.Dir(filepath.Join(root, file)), 0o755)
			os.WriteFile(filepath.Join(root, file), []byte("x"), mode)
		}
		return root
	}
	for _, c := range []struct {
		name  string
		links map[string]string
		file  string
		mode  os.FileMode
		want  bool
	}{
		{"plain", nil, "lib/systemd/systemd", 0o755, true},
		{"merged /usr", map[string]string{"lib": "usr/lib"}, "usr/lib/systemd/systemd", 0o755, true},
		{"absolute link", map[string]string{"lib": "/usr/lib"}, "usr/lib/systemd/systemd", 0o755, true},
		{"link out of the root", map[string]string{"lib": "../../../../../../usr/lib"}, "usr/lib/systemd/systemd", 0o755, true},
		{"not executable", nil, "lib/systemd/systemd", 0o644, false},
		{"none", map[string]string{"lib": "usr/lib"}, "usr/bin/sh", 0o755, false},
		{"loop", map[string]string{"lib": "lib"}, "", 0, false},
	} {
		root := mk(t, c.links, c.file, c.mode)
		if got := hasSystemd(root); got != c.want {
			t.Errorf("%s: hasSystemd = %v, want %v", c.name, got, c.want)
		}
	}
	// The host's own /usr/lib/systemd/systemd must not count for an
	// image's absolute link.
	root := mk(t, map[string]string{"lib": "/usr/lib"}, "", 0)
	if hasSystemd(root) {
		t.Errorf("an image whose /lib -> /usr/lib and no systemd: hasSystemd = true (the host's?)")
	}
}

// TestRecipePinsItsInputs: what the Recipe version stands for is pinned to
// it, so that changing one without bumping Recipe (which rebuilds every
// cached image) fails here.
func TestRecipePinsItsInputs(t *testing.T) {
	p := plan{
		ref: mustRef(t, "debian:bookworm"), codename: "bookworm", arch: "amd64", packages: []string{"curl"},
		archive: archive{Mirror: "M", Security: "S"}, security: true,
	}
	inputs := fmt.Sprintf("guest %q\nmkfs %q\nroot %o\nmmdebstrap %q\nnovalid %q\nkey %s\n",
		guestPackages, mkfsFlags, rootMode, mmdebstrapArgs(p, "ROOT"),
		mmdebstrapArgs(plan{archive: archive{NoValidUntil: true}}, "ROOT"),
		debianKey("bookworm", "amd64", time.Unix(0, 0), time.Unix(1, 0), []string{"curl"}))
	pinned := map[int]string{
		2: `guest ["kmod" "passwd"]
mkfs ["-zlz4" "-T0"]
root 755
mmdebstrap ["--mode=root" "--variant=minbase" "--format=directory" "--verbose" "--architectures=amd64" "--include=kmod,passwd,curl" "bookworm" "ROOT" "deb M bookworm main" "deb S bookworm-security main"]
novalid ["--mode=root" "--variant=minbase" "--format=directory" "--verbose" "--architectures=" "--include=kmod,passwd" "--aptopt=Acquire::Check-Valid-Until \"false\"" "" "ROOT" "deb   main"]
key debian-bookworm-e34e627d1bbdc36a
`,
	}
	if got := pinned[Recipe]; got != inputs {
		t.Errorf("the recipe's inputs changed without a Recipe bump (Recipe %d): bump Recipe in image.go and pin these:\n%s\nwas:\n%s", Recipe, inputs, got)
	}
}
