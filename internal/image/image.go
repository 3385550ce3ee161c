// Package image owns machine images: read-only root file system images
// built from a distribution's archive (debian:SUITE, with mmdebstrap) or
// unpacked from an OCI image (oci:DIR[:TAG], docker-archive:FILE, or a
// registry reference such as docker.io/library/postgres:16, through
// UnpackOCI and ResolveRegistry), and the cache that keeps them (~/.cache/vmlab/images).
//
// The API other parts call:
//
//	ref, err := image.ParseRef("debian:bookworm")
//	s := &image.Store{Dir: "", Logf: t.Logf}  // Dir "" is ~/.cache/vmlab/images
//	img, err := s.Get(ctx, ref, []string{"curl"})
//	// img.Path is an erofs image file (img.FSType) to attach read-only.
//	imgs, err := s.List()
//	err = s.Remove(img.Key)
//
// An image is keyed by its content: for debian: the suite's codename, the
// sorted packages, the architecture, the archive's Release date, its
// security suite's (or that it has none) and the recipe version (Recipe); for OCI images the image's digest and the recipe. A
// key whose file is missing, or whose size or checksum differs from the
// record beside it, is rebuilt, never trusted. Get of a cached image works
// offline: when the archive cannot be reached, the newest cached image of
// the same suite and packages is used, and Get says so.
//
// Get marks the images it returns in use by this process (as the kernel
// cache does, internal/cachefile): a trim never removes them while the
// process lives. The cache is bounded by Limits, least recently used out.
package image

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Recipe is the version of the build recipe (the mmdebstrap options, what
// the guest side needs, the file system, the key's inputs). Bump it
// whenever the recipe changes: every image is then rebuilt
// (TestRecipePinsItsInputs fails until it is).
const Recipe = 2

// Scheme names the kind of image a Ref refers to.
const (
	SchemeDebian        = "debian"
	SchemeOCI           = "oci"
	SchemeDockerArchive = "docker-archive"
	// SchemeRegistry is an image in a registry, named with its registry
	// host: "docker.io/library/postgres:16", "127.0.0.1:5000/busybox:v1",
	// "ghcr.io/org/app@sha256:…".
	SchemeRegistry = "registry"
)

// Ref is a parsed image reference.
type Ref struct {
	// Scheme is SchemeDebian, SchemeOCI, SchemeDockerArchive or
	// SchemeRegistry.
	Scheme string
	// Suite is the Debian suite or codename (debian: only), as written:
	// "stable" and "testing" are resolved against the archive by Get.
	Suite string
	// Path is the OCI layout directory or the docker-archive file,
	// absolute (oci: and docker-archive: only).
	Path string
	// Tag selects an image of an OCI layout by its
	// org.opencontainers.image.ref.name; "" means the layout's only image.
	Tag string
	// Name is the registry reference as written, without a "docker://"
	// prefix (registry only): REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST].
	Name string
}

// Registry returns the registry host of a registry reference
// ("docker.io", "127.0.0.1:5000"); "" for other schemes.
func (r Ref) Registry() string {
	if r.Scheme != SchemeRegistry {
		return ""
	}
	host, _, _ := strings.Cut(r.Name, "/")
	return host
}

// String returns the reference as ParseRef accepts it.
func (r Ref) String() string {
	switch r.Scheme {
	case SchemeDebian:
		return "debian:" + r.Suite
	case SchemeRegistry:
		return r.Name
	case SchemeOCI:
		if r.Tag != "" {
			return "oci:" + r.Path + ":" + r.Tag
		}
		return "oci:" + r.Path
	default:
		return r.Scheme + ":" + r.Path
	}
}

// refForms lists the forms ParseRef accepts, for its errors.
const refForms = "debian:SUITE (debian:bookworm), oci:DIR[:TAG], docker-archive:FILE or REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST] (docker.io/library/postgres:16, 127.0.0.1:5000/app:v1)"

// ParseRef parses "debian:SUITE", "oci:DIR[:TAG]", "docker-archive:FILE"
// or a registry reference. Relative paths are made absolute. It does not
// touch the network or the paths: Get does.
//
// A registry reference must name its registry host as its first
// component: a name with a dot or a port, or localhost
// ("docker.io/library/postgres:16", "127.0.0.1:5000/busybox:v1",
// "localhost/app@sha256:…"), optionally after "docker://". A name
// without one ("postgres:16", "library/postgres") is refused rather than
// taken as Docker Hub's, so that a typo ("debain:trixie") is an error, not
// a pull: Docker Hub's images are written docker.io/library/NAME:TAG. A
// reference without a tag or digest means :latest.
func ParseRef(s string) (Ref, error) {
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		return parseRegistryRef(s, rest)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(scheme, "/") {
		// No scheme before a slash: a registry reference, or nothing.
		return parseRegistryRef(s, s)
	}
	switch scheme {
	case SchemeDebian:
		if rest == "" {
			return Ref{}, fmt.Errorf("parse image %q: empty suite: write debian:SUITE, e.g. debian:bookworm, debian:trixie, debian:sid or debian:stable", s)
		}
		if !validSuite(rest) {
			return Ref{}, fmt.Errorf("parse image %q: suite %q is not a suite name (lowercase letters, digits and -)", s, rest)
		}
		return Ref{Scheme: SchemeDebian, Suite: rest}, nil
	case SchemeOCI:
		dir, tag := rest, ""
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			dir, tag = rest[:i], rest[i+1:]
			if tag == "" || strings.Contains(tag, "/") {
				return Ref{}, fmt.Errorf("parse image %q: bad tag %q: write oci:DIR or oci:DIR:TAG", s, tag)
			}
		}
		if dir == "" {
			return Ref{}, fmt.Errorf("parse image %q: empty directory: write oci:DIR or oci:DIR:TAG", s)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return Ref{}, fmt.Errorf("parse image %q: %w", s, err)
		}
		return Ref{Scheme: SchemeOCI, Path: abs, Tag: tag}, nil
	case SchemeDockerArchive:
		if rest == "" {
			return Ref{}, fmt.Errorf("parse image %q: empty file: write docker-archive:FILE (a docker save tarball)", s)
		}
		abs, err := filepath.Abs(rest)
		if err != nil {
			return Ref{}, fmt.Errorf("parse image %q: %w", s, err)
		}
		return Ref{Scheme: SchemeDockerArchive, Path: abs}, nil
	}
	// "HOST:PORT/REPO" and "localhost/REPO:TAG" have a colon before a
	// slash too.
	if strings.Contains(rest, "/") {
		return parseRegistryRef(s, s)
	}
	return Ref{}, fmt.Errorf("parse image %q: unknown scheme %q and no registry host: write %s; if it is a Docker Hub image, name its registry: docker.io/library/%s", s, scheme, refForms, s)
}

// parseRegistryRef parses ref, s as written less a "docker://" prefix, as
// a registry reference whose first component is the registry host.
func parseRegistryRef(s, ref string) (Ref, error) {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !(host == "localhost" || strings.ContainsAny(host, ".:")) {
		hint := ""
		if ref != "" && !strings.ContainsAny(ref, " \t") {
			hint = "; if it is a Docker Hub image, name its registry: docker.io/" + ref
			if !ok {
				hint = "; if it is a Docker Hub image, name its registry: docker.io/library/" + ref
			}
		}
		return Ref{}, fmt.Errorf("parse image %q: no scheme and no registry host: write %s%s", s, refForms, hint)
	}
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		// Strict validation wants a tag or digest; a bare repository
		// means :latest as for docker pull.
		if _, err2 := name.ParseReference(ref+":latest", name.StrictValidation); err2 != nil || strings.Contains(ref, "@") {
			return Ref{}, fmt.Errorf("parse image %q: not a registry reference (REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST], lowercase repository): %w", s, err)
		}
	}
	return Ref{Scheme: SchemeRegistry, Name: ref}, nil
}

// validSuite says whether s can be a suite name in the archive's dists/.
func validSuite(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s != "" && s[0] != '-'
}

// Image is a built image in the cache.
type Image struct {
	// Path is the read-only root file system image file.
	Path string `json:"-"`
	// FSType is the file system in Path: "erofs" or "ext4".
	FSType string `json:"fstype"`
	// Key is the content key, also the file's name without its extension.
	Key string `json:"key"`
	// Ref is the reference it was built from, with a debian suite
	// resolved to its codename (debian:stable → debian:bookworm).
	Ref string `json:"ref"`
	// Asked is the reference as written when it differed from Ref
	// (debian:stable), so that it finds the image offline too.
	Asked string `json:"asked,omitempty"`
	// Packages are the packages asked for, sorted (debian: only; the
	// guest side's own packages are not listed).
	Packages []string `json:"packages,omitempty"`
	// Size is Path's size in bytes.
	Size int64 `json:"size"`
	// Built is when it was built.
	Built time.Time `json:"built"`
	// Used is when it was last used (the image file's mtime).
	Used time.Time `json:"-"`
	// InUse says whether a live vmlab process uses it.
	InUse bool `json:"-"`

	// Release is the archive's Release date it was built from (debian:)
	// and Digest the OCI image's digest (oci:, docker-archive:).
	Release time.Time `json:"release,omitzero"`
	Digest  string    `json:"digest,omitempty"`
	// Security is the Release date of the suite's -security suite it was
	// built with (debian:); zero when the security archive has none.
	Security time.Time `json:"security,omitzero"`
	// Systemd says whether the image has /lib/systemd/systemd (following
	// its links), which init = "systemd" boots.
	Systemd bool `json:"systemd,omitempty"`
	// Problem is what List found wrong with the entry, cheaply (its size
	// differs from its record's, or it has no record): "" when nothing.
	// Get rebuilds such an entry.
	Problem string `json:"-"`
	// Arch is the Debian architecture.
	Arch string `json:"arch"`
	// SHA256 is Path's checksum, checked before an image is trusted.
	SHA256 string `json:"sha256"`
	// Recipe is the recipe version it was built with.
	Recipe int `json:"recipe"`
	// Resolved are the registry references that named this image (registry
	// images): the digest each resolved to and when it last did. Without
	// the registry, a reference is the image it last resolved to.
	Resolved []Resolution `json:"resolved,omitempty"`
}

// Resolution is a registry reference resolved to a digest.
type Resolution struct {
	// Ref is the reference as ParseRef returns it (Ref.String).
	Ref string `json:"ref"`
	// Digest is the digest of the manifest or index it named.
	Digest string `json:"digest"`
	// At is when it last resolved to it.
	At time.Time `json:"at"`
}

// UnpackOCI unpacks the OCI image ref refers to (oci: or docker-archive:)
// into the empty directory dir as a root file system, and returns the
// image's digest. The OCI package sets it; nil means vmlab was built
// without it.
var UnpackOCI func(ctx context.Context, ref Ref, dir string) (digest string, err error)

// DigestOCI, when set (with UnpackOCI), returns the digest UnpackOCI
// would, reading no layer: Get looks in the cache with it first.
var DigestOCI func(ctx context.Context, ref Ref) (string, error)

// ResolveRegistry, when set (with UnpackOCI), asks the registry what a
// registry reference names now: the digest of its manifest or index and
// the ID (config digest) of its linux/amd64 image, reading no layer. An
// error that is an *UnreachableError (errors.As) means the registry could
// not be reached: Get then uses the image the reference last named.
var ResolveRegistry func(ctx context.Context, ref Ref) (digest, id string, err error)

// UnreachableError is ResolveRegistry's error for a registry that could
// not be reached at all.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// errNoOCI is Get's error for an OCI reference when UnpackOCI is nil.
var errNoOCI = errors.New("OCI images are not built into this vmlab")
