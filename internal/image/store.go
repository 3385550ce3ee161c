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

// debianKey is the content key of a debian: image.
func debianKey(codename, arch string, date time.Time, pkgs []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %d\nsuite %s\narch %s\nrelease %s\npackages %s\n",
		Recipe, codename, arch, date.UTC().Format(time.RFC3339), strings.Join(pkgs, ","))
	return "debian-" + codename + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// ociKey is the content key of an OCI image.
func ociKey(digest string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "recipe %d\ndigest %s\n", Recipe, digest))
	return "oci-" + hex.EncodeToString(h[:])[:16]
}

// getDebian resolves the suite's Release, then returns the cached image
// of that key or builds it; without the archive, the newest cached image
// of the suite and packages.
func (s *Store) getDebian(ctx context.Context, dir string, ref Ref, pkgs []string) (Image, error) {
	a := s.archive
	if a == nil {
		h := hostArchive("/etc/apt")
		a = &h
	}
	arch := s.debArch()
	rel, err := a.release(ctx, a.Mirror, ref.Suite)
	if errors.Is(err, errNoSuite) {
		msg := fmt.Sprintf("image %s: the archive %s has no suite %q", ref, a.Mirror, ref.Suite)
		if have := a.suites(ctx); len(have) > 0 {
			msg += "; it has " + strings.Join(have, ", ")
		}
		return Image{}, errors.New(msg)
	}
	if err != nil {
		img, ok := s.newestCached(dir, ref, pkgs, arch)
		if !ok {
			return Image{}, fmt.Errorf("image %s: reach the archive %s (no image of it cached to use offline): %w", ref, a.Mirror, err)
		}
		s.logf("image %s: archive %s unreachable (%v): using the cached image %s, built %s from the archive of %s",
			ref, a.Mirror, err, img.Key, img.Built.Format(time.DateTime), img.Release.Format(time.DateOnly))
		return img, nil
	}
	if !rel.ValidUntil.IsZero() && time.Now().After(rel.ValidUntil) && !a.NoValidUntil {
		return Image{}, fmt.Errorf("image %s: the archive %s is stale: its Release of %s expired on %s (Valid-Until), and apt refuses it; use an up-to-date mirror, or set Acquire::Check-Valid-Until \"false\" in the host's apt configuration to accept it",
			ref, a.Mirror, rel.Codename, rel.ValidUntil.Format(time.DateOnly))
	}
	key := debianKey(rel.Codename, arch, rel.Date, pkgs)
	if img, err := s.cached(dir, key); err == nil {
		return img, nil
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
		return img, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		s.logf("image %s: cached %s not trusted (%v): rebuilding it", ref, key, err)
	}
	p := plan{
		ref: ref, codename: rel.Codename, release: rel.Date, arch: arch,
		packages: pkgs, archive: *a, key: key,
	}
	return s.buildDebian(ctx, dir, p)
}

// newestCached returns the newest checked image built from ref (as
// written, or its codename) with pkgs, for use without the archive.
func (s *Store) newestCached(dir string, ref Ref, pkgs []string, arch string) (Image, bool) {
	imgs, _ := s.list(dir)
	slices.SortFunc(imgs, func(a, b Image) int { return b.Release.Compare(a.Release) })
	for _, img := range imgs {
		if img.Recipe != Recipe || img.Arch != arch || !slices.Equal(img.Packages, pkgs) {
			continue
		}
		if img.Ref != ref.String() && img.Asked != ref.String() {
			continue
		}
		if img, err := s.cached(dir, img.Key); err == nil {
			return img, true
		}
	}
	return Image{}, false
}

// cached returns the image of key if its record and file agree (size and
// SHA-256), marking it in use. A missing entry is os.ErrNotExist.
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
		return Image{}, fmt.Errorf("size %d, recorded %d", fi.Size(), img.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Image{}, fmt.Errorf("read %s: %w", img.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != img.SHA256 {
		return Image{}, fmt.Errorf("checksum %s, recorded %s", sum[:12], img.SHA256[:min(12, len(img.SHA256))])
	}
	if err := s.use(dir, img); err != nil {
		return Image{}, err
	}
	img.Used = time.Now()
	return img, nil
}

// use marks img in use by this process and used now (its record too, so
// that the bound does not evict a used image's record).
func (s *Store) use(dir string, img Image) error {
	err := cachefile.Use(img.Path, func(io.Writer) error {
		return fmt.Errorf("removed by a trim meanwhile")
	})
	if err != nil {
		return fmt.Errorf("use image %s: %w", img.Key, err)
	}
	now := time.Now()
	os.Chtimes(recordPath(dir, img.Key), now, now)
	return nil
}

func recordPath(dir, key string) string { return filepath.Join(dir, key+".json") }

// readRecord reads the record of key.
func readRecord(dir, key string) (Image, error) {
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

// List returns the cached images, most recently used first.
func (s *Store) List() ([]Image, error) {
	dir, err := s.dir()
	if err != nil {
		return nil, err
	}
	return s.list(dir)
}

func (s *Store) list(dir string) ([]Image, error) {
	records, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, r := range records {
		img, err := readRecord(dir, strings.TrimSuffix(filepath.Base(r), ".json"))
		if err != nil {
			continue
		}
		fi, err := os.Stat(img.Path)
		if err != nil {
			continue // evicted; its record goes at the next trim
		}
		img.Used = fi.ModTime()
		img.InUse = cachefile.InUse(img.Path)
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int { return b.Used.Compare(a.Used) })
	return out, nil
}

// Remove removes the image of key, unless a running vmlab uses it.
func (s *Store) Remove(key string) error {
	dir, err := s.dir()
	if err != nil {
		return err
	}
	if strings.ContainsAny(key, "/") || key == "" {
		return fmt.Errorf("remove image %q: not a key (vmlab image ls lists them)", key)
	}
	path := filepath.Join(dir, key+ext)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if os.Remove(recordPath(dir, key)) == nil {
			return nil
		}
		return fmt.Errorf("remove image %s: no such image (vmlab image ls lists them)", key)
	}
	if err != nil {
		return fmt.Errorf("remove image %s: %w", key, err)
	}
	defer f.Close()
	// Held while removing, so that nobody starts using it meanwhile.
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return fmt.Errorf("remove image %s: a running vmlab uses it; stop it first", key)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove image %s: %w", key, err)
	}
	os.Remove(recordPath(dir, key))
	return nil
}

// trim bounds the cache to Limits, counting the roots of builds in
// progress, and removes the records whose image is gone.
func (s *Store) trim(dir string) {
	// Live builds' roots take their room too (dead ones are swept).
	l := Limits
	l.MaxBytes = max(0, l.MaxBytes-s.sweep(dir))
	removed, _ := cachefile.Trim(dir, l)
	for _, e := range removed {
		if strings.HasSuffix(e.Name, ext) {
			s.logf("image cache: evicted %s (%d MB, last used %s)", e.Name, e.Size>>20, e.Used.Format(time.DateTime))
		}
	}
	records, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, r := range records {
		if _, err := os.Stat(strings.TrimSuffix(r, ".json") + ext); errors.Is(err, os.ErrNotExist) {
			os.Remove(r)
		}
	}
}
