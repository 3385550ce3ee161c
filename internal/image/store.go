package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// Limits bound the image cache, applied after every build: a minbase
// image with curl is 109 MB as erofs, one with a service more, so 4 GiB
// keeps a few dozen. Least recently used go first; images in use never.
var Limits = cachefile.Limits{MaxBytes: 4 << 30, MaxAge: 30 * 24 * time.Hour, Grace: 10 * time.Minute}

// Store is the image cache in a directory. Its methods may be called from
// several goroutines and processes at once: entries are written whole
// (under a temporary name, then renamed) and checked before use, one
// build per key at a time (the others wait for it: lock.go), and what
// builds that died left is swept.
type Store struct {
	// Dir is the cache directory; "" means ~/.cache/vmlab/images (under
	// $XDG_CACHE_HOME when set).
	Dir string
	// Logf receives progress lines (what is downloaded, how long steps
	// take); nil discards them.
	Logf func(format string, args ...any)

	// Tests replace these: the archive (nil: the host's, read from
	// /etc/apt), the architecture ("": the host's) and the build.
	archive *archive
	arch    string
	build   func(ctx context.Context, p plan, root string) error
}

// ext is the image files' extension, by file system.
const ext = ".erofs"

// dir returns the cache directory, creating it, swept of what builds
// that died left in it (see sweep).
func (s *Store) dir() (string, error) {
	dir := s.Dir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find cache directory: %w", err)
		}
		dir = filepath.Join(base, "vmlab", "images")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create image cache %s: %w", dir, err)
	}
	s.sweep(dir)
	return dir, nil
}

func (s *Store) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// debArch returns the Debian architecture images are built for.
func (s *Store) debArch() string {
	if s.arch != "" {
		return s.arch
	}
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return runtime.GOARCH // amd64, arm64, riscv64, s390x
}

// Get returns the image ref and packages name, from the cache or built.
// The image is marked in use by this process. packages apply to debian:
// images only.
func (s *Store) Get(ctx context.Context, ref Ref, packages []string) (Image, error) {
	dir, err := s.dir()
	if err != nil {
		return Image{}, err
	}
	switch ref.Scheme {
	case SchemeDebian:
		pkgs, err := cleanPackages(packages)
		if err != nil {
			return Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		return s.getDebian(ctx, dir, ref, pkgs)
	case SchemeOCI, SchemeDockerArchive, SchemeRegistry:
		if len(packages) > 0 {
			return Image{}, fmt.Errorf("image %s: packages apply to debian: images only; install them in the OCI image", ref)
		}
		if ref.Scheme == SchemeRegistry {
			return s.getRegistry(ctx, dir, ref)
		}
		return s.getOCI(ctx, dir, ref)
	}
	return Image{}, fmt.Errorf("image %s: unknown scheme %q", ref, ref.Scheme)
}

// cleanPackages sorts and dedups packages, refusing names Debian cannot
// have (a typo caught before the network is asked).
func cleanPackages(packages []string) ([]string, error) {
	var out []string
	for _, p := range packages {
		if !validPackage(p) {
			return nil, fmt.Errorf("package %q: not a Debian package name (lowercase letters, digits, + - .)", p)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func validPackage(p string) bool {
	if len(p) < 2 || !(p[0] >= 'a' && p[0] <= 'z' || p[0] >= '0' && p[0] <= '9') {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("+-.", c)) {
			return false
		}
	}
	return true
}

// debianKey is the content key of a debian: image: security is the
// Release date of the suite's -security suite, zero when it has none.
func debianKey(codename, arch string, date, security time.Time, pkgs []string) string {
	sec := "none"
	if !security.IsZero() {
		sec = security.UTC().Format(time.RFC3339)
	}
	h := sha256.New()
	fmt.Fprintf(h, "recipe %d\nsuite %s\narch %s\nrelease %s\nsecurity %s\npackages %s\n",
		Recipe, codename, arch, date.UTC().Format(time.RFC3339), sec, strings.Join(pkgs, ","))
	return "debian-" + codename + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// checkKey refuses a key that is not a plain file name in the cache (a
// codename read from the archive is part of a debian: key).
func checkKey(key string) error {
	if key == "" || strings.ContainsAny(key, "/\x00") || strings.Contains(key, "..") || strings.HasPrefix(key, ".") {
		return fmt.Errorf("%q is not an image key (vmlab image ls lists them)", key)
	}
	return nil
}

// ociKey is the content key of an OCI image.
func ociKey(digest string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "recipe %d\ndigest %s\n", Recipe, digest))
	return "oci-" + hex.EncodeToString(h[:])[:16]
}

// resolve reads the Releases a debian: image of suite is built from: the
// suite's, and its -security suite's (zero when the security archive has
// none, as for sid). An alias (stable, testing) is read again under the
// codename it names, so that debian:stable and debian:trixie are one image
// even where a proxy serves a stale dists/stable. base is the archive
// whose answer err is about; only the suite as written missing is
// errNoSuite.
func (a archive) resolve(ctx context.Context, suite string) (rel, sec release, base string, err error) {
	rel, err = a.release(ctx, a.Mirror, suite)
	if err != nil {
		return release{}, release{}, a.Mirror, err
	}
	if rel.Codename != suite {
		byName, err := a.release(ctx, a.Mirror, rel.Codename)
		if errors.Is(err, errNoSuite) {
			err = fmt.Errorf("%s names its codename %s, which it does not serve: %v", suite, rel.Codename, err)
		}
		if err == nil && byName.Codename != rel.Codename {
			err = fmt.Errorf("%w: %s names its codename %s, whose Codename is %s", errMalformed, suite, rel.Codename, byName.Codename)
		}
		if err != nil {
			return release{}, release{}, a.Mirror, err
		}
		rel = byName
	}
	sec, err = a.release(ctx, a.Security, rel.Codename+"-security")
	if errors.Is(err, errNoSuite) {
		return rel, release{}, "", nil
	}
	if err != nil {
		return release{}, release{}, a.Security, err
	}
	return rel, sec, "", nil
}

// trouble says what is wrong with an archive that answered err.
func trouble(base string, err error) string {
	switch {
	case unreachable(err):
		return "the archive " + base + " is unreachable"
	case errors.Is(err, errMalformed):
		return "the archive " + base + " serves a malformed InRelease"
	}
	return "the archive " + base + " fails"
}

// expired refuses a Release past its Valid-Until, as apt does, unless
// the host's apt does not check it.
func expired(ref Ref, a *archive, base string, r release) error {
	if r.ValidUntil.IsZero() || !time.Now().After(r.ValidUntil) || a.NoValidUntil {
		return nil
	}
	return fmt.Errorf("image %s: the archive %s is stale: its Release of %s expired on %s (Valid-Until), and apt refuses it; use an up-to-date mirror, or set Acquire::Check-Valid-Until \"false\" in the host's apt configuration to accept it",
		ref, base, r.Codename, r.ValidUntil.Format(time.DateOnly))
}

// getDebian resolves the suite's Releases, then returns the cached image
// of that key or builds it; without the archive, the newest cached image
// of the suite and packages.
func (s *Store) getDebian(ctx context.Context, dir string, ref Ref, pkgs []string) (Image, error) {
	a := s.archive
	if a == nil {
		h := hostArchive("/etc/apt")
		a = &h
	}
	arch := s.debArch()
	rel, sec, base, err := a.resolve(ctx, ref.Suite)
	if errors.Is(err, errNoSuite) {
		msg := fmt.Sprintf("image %s: the archive %s has no suite %q", ref, a.Mirror, ref.Suite)
		if have := a.suites(ctx); len(have) > 0 {
			msg += "; it has " + strings.Join(have, ", ")
		}
		return Image{}, errors.New(msg)
	}
	if err != nil {
		img, ok, corrupt := s.newestCached(dir, ref, pkgs, arch)
		if !ok {
			if corrupt != nil {
				return Image{}, fmt.Errorf("image %s: %s, and %v: nothing usable offline: %w", ref, trouble(base, err), corrupt, err)
			}
			return Image{}, fmt.Errorf("image %s: %s (no image of it cached to use offline): %w", ref, trouble(base, err), err)
		}
		s.logf("image %s: %s (%v): using the cached image %s, built %s from the archive of %s",
			ref, trouble(base, err), err, img.Key, img.Built.Format(time.DateTime), img.Release.Format(time.DateOnly))
		return img, nil
	}
	if err := expired(ref, a, a.Mirror, rel); err != nil {
		return Image{}, err
	}
	if err := expired(ref, a, a.Security, sec); err != nil {
		return Image{}, err
	}
	key := debianKey(rel.Codename, arch, rel.Date, sec.Date, pkgs)
	if err := checkKey(key); err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	if img, err := s.cached(dir, key); err == nil {
		return s.asked(dir, ref, img), nil
	}
	// One build per key: another process (or machine of this lab)
	// building it makes this one wait, then use its image.
	unlock, err := lockKey(ctx, dir, key, func() {
		what := ref.String()
		if len(pkgs) > 0 {
			what += "+" + strings.Join(pkgs, ",")
		}
		s.logf("image %s: waiting for another vmlab building %s (%s)", ref, what, key)
	})
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer unlock()
	if img, err := s.cached(dir, key); err == nil {
		return s.asked(dir, ref, img), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		s.logf("image %s: %v: rebuilding", ref, err)
	}
	p := plan{
		ref: ref, codename: rel.Codename, release: rel.Date, arch: arch,
		packages: pkgs, archive: *a, key: key, security: !sec.Date.IsZero(), securityDate: sec.Date,
	}
	return s.buildDebian(ctx, dir, p)
}

// asked records in img's record that ref, an alias of its suite
// (debian:stable), named it, so that ref finds it offline. A record that
// cannot be written costs only that: it is logged.
func (s *Store) asked(dir string, ref Ref, img Image) Image {
	if img.Ref == ref.String() || img.Asked == ref.String() {
		return img
	}
	img.Asked = ref.String()
	data, _ := json.MarshalIndent(img, "", "  ")
	if err := cachefile.WriteBytes(recordPath(dir, img.Key), append(data, '\n')); err != nil {
		s.logf("image %s: record that it names %s: %v", ref, img.Key, err)
	}
	return img
}

// newestCached returns the newest checked image built from ref (as
// written, or its codename) with pkgs, for use without the archive; or,
// when the only ones are corrupt, what is wrong with the newest.
func (s *Store) newestCached(dir string, ref Ref, pkgs []string, arch string) (img Image, ok bool, corrupt error) {
	imgs, _ := s.list(dir)
	slices.SortFunc(imgs, func(a, b Image) int { return b.Release.Compare(a.Release) })
	for _, img := range imgs {
		if img.Recipe != Recipe || img.Arch != arch || !slices.Equal(img.Packages, pkgs) {
			continue
		}
		if img.Ref != ref.String() && img.Asked != ref.String() {
			continue
		}
		img, err := s.cached(dir, img.Key)
		if err == nil {
			return img, true, nil
		}
		if corrupt == nil {
			corrupt = err
		}
	}
	return Image{}, false, corrupt
}

// errCorrupt is cached's error for an entry whose file does not match
// its record.
var errCorrupt = errors.New("corrupt")

// cached returns the image of key if its record and file agree (size and
// SHA-256), marking it in use. A missing entry is os.ErrNotExist, one
// that does not match its record errCorrupt.
func (s *Store) cached(dir, key string) (Image, error) {
	img, err := readRecord(dir, key)
	if err != nil {
		return Image{}, err
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Image{}, err
	}
	if fi.Size() != img.Size {
		return Image{}, fmt.Errorf("cached image %s is %w (its size, %d bytes, does not match its record's, %d)", key, errCorrupt, fi.Size(), img.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Image{}, fmt.Errorf("read %s: %w", img.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != img.SHA256 {
		return Image{}, fmt.Errorf("cached image %s is %w (its SHA-256 does not match its record)", key, errCorrupt)
	}
	if err := s.use(dir, img); err != nil {
		return Image{}, err
	}
	img.Used = time.Now()
	return img, nil
}

// use marks img in use by this process and used now.
func (s *Store) use(dir string, img Image) error {
	err := cachefile.Use(img.Path, func(io.Writer) error {
		return fmt.Errorf("removed by a trim meanwhile")
	})
	if err != nil {
		return fmt.Errorf("use image %s: %w", img.Key, err)
	}
	return nil
}

func recordPath(dir, key string) string { return filepath.Join(dir, key+".json") }

// readRecord reads the record of key.
func readRecord(dir, key string) (Image, error) {
	if err := checkKey(key); err != nil {
		return Image{}, err
	}
	data, err := os.ReadFile(recordPath(dir, key))
	if err != nil {
		return Image{}, err
	}
	var img Image
	if err := json.Unmarshal(data, &img); err != nil {
		return Image{}, fmt.Errorf("read record of %s: %w", key, err)
	}
	if img.Key != key {
		return Image{}, fmt.Errorf("record of %s names %s", key, img.Key)
	}
	img.Path = filepath.Join(dir, key+ext)
	return img, nil
}

// List returns the cached images, most recently used first, with what is
// cheaply seen wrong with them (Image.Problem).
func (s *Store) List() ([]Image, error) {
	dir, err := s.dir()
	if err != nil {
		return nil, err
	}
	return s.list(dir)
}

// list lists the image files in dir, with their records: a file without
// one (or with one that cannot be read) is listed by its key and size.
func (s *Store) list(dir string) ([]Image, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, f := range files {
		key := strings.TrimSuffix(filepath.Base(f), ext)
		fi, err := os.Stat(f)
		if err != nil || checkKey(key) != nil {
			continue // removed meanwhile
		}
		img, err := readRecord(dir, key)
		switch {
		case errors.Is(err, os.ErrNotExist):
			img = Image{Key: key, Path: f, Size: fi.Size(), Problem: "no record (vmlab image rm KEY removes it)"}
		case err != nil:
			img = Image{Key: key, Path: f, Size: fi.Size(), Problem: fmt.Sprintf("unreadable record (%v)", err)}
		case fi.Size() != img.Size:
			img.Problem = fmt.Sprintf("corrupt: %d bytes, its record says %d (rebuilt when next used)", fi.Size(), img.Size)
		}
		img.Used = fi.ModTime()
		img.InUse = cachefile.InUse(f)
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int { return b.Used.Compare(a.Used) })
	return out, nil
}

// KeyOf returns the key an OCI reference (oci:, docker-archive:) is
// cached under, reading its index, manifest and config but no layer, so
// that it can be removed by its reference: the same image from a layout
// and a tarball is one entry.
func (s *Store) KeyOf(ctx context.Context, ref Ref) (string, error) {
	if ref.Scheme != SchemeOCI && ref.Scheme != SchemeDockerArchive {
		return "", fmt.Errorf("image %s: KeyOf reads OCI layouts and docker-archive files only", ref)
	}
	if DigestOCI == nil {
		return "", fmt.Errorf("image %s: %w", ref, errNoOCI)
	}
	digest, err := DigestOCI(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	return ociKey(digest), nil
}

// Remove removes the image of key, unless a running vmlab uses it.
func (s *Store) Remove(key string) error {
	dir, err := s.dir()
	if err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	if err := s.evict(dir, key); err != nil {
		return fmt.Errorf("remove image %s: %w", key, err)
	}
	return nil
}

// errInUse is evict's error for an image a live process uses.
var errInUse = errors.New("a running vmlab uses it; stop it first")

// evict removes the image file of key and its record, unless a live
// process holds the file: it holds the file's lock while removing, so
// that nobody starts using it meanwhile.
func (s *Store) evict(dir, key string) error {
	path := filepath.Join(dir, key+ext)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if os.Remove(recordPath(dir, key)) == nil {
			return nil
		}
		return fmt.Errorf("no such image (vmlab image ls lists them)")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return errInUse
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	os.Remove(recordPath(dir, key))
	return nil
}

// trim bounds the image files to Limits, counting the roots and partial
// image files of builds in progress. Only image files are evicted (each
// with its record): records are not cache entries of their own, and the
// sweep removes those whose image is gone.
func (s *Store) trim(dir string) {
	l := Limits
	total := s.sweep(dir) // live builds' roots take their room too
	entries, _ := cachefile.List(dir)
	var imgs []cachefile.Entry
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name, ".") && strings.Contains(e.Name, ext+".tmp-"):
			total += e.Size // a live build's (a dead one's went in the sweep)
		case !strings.HasPrefix(e.Name, ".") && strings.HasSuffix(e.Name, ext):
			total += e.Size
			imgs = append(imgs, e)
		}
	}
	now := time.Now()
	for _, e := range imgs { // least recently used first
		age := now.Sub(e.Used)
		if e.InUse || age < l.Grace || total <= l.MaxBytes && age <= l.MaxAge {
			continue
		}
		if s.evict(dir, strings.TrimSuffix(e.Name, ext)) == nil {
			total -= e.Size
			s.logf("image cache: evicted %s (%d MB, last used %s)", e.Name, e.Size>>20, e.Used.Format(time.DateTime))
		}
	}
}
