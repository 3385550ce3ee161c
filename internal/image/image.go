// Package image owns machine images: read-only root file system images
// built from a distribution's archive (debian:SUITE, with mmdebstrap) or
// unpacked from an OCI image (oci:DIR[:TAG], docker-archive:FILE, through
// UnpackOCI), and the cache that keeps them (~/.cache/vmlab/images).
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
// An image is keyed by its content: for debian: the suite, the sorted
// packages, the architecture, the archive's Release date and the recipe
// version (Recipe); for OCI images the image's digest and the recipe. A
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
)

// Recipe is the version of the build recipe (the mmdebstrap options, what
// the guest side needs, the file system). Bump it whenever the recipe
// changes: every image is then rebuilt.
const Recipe = 1

// Scheme names the kind of image a Ref refers to.
const (
	SchemeDebian        = "debian"
	SchemeOCI           = "oci"
	SchemeDockerArchive = "docker-archive"
)

// Ref is a parsed image reference.
type Ref struct {
	// Scheme is SchemeDebian, SchemeOCI or SchemeDockerArchive.
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
}

// String returns the reference as ParseRef accepts it.
func (r Ref) String() string {
	switch r.Scheme {
	case SchemeDebian:
		return "debian:" + r.Suite
	case SchemeOCI:
		if r.Tag != "" {
			return "oci:" + r.Path + ":" + r.Tag
		}
		return "oci:" + r.Path
	default:
		return r.Scheme + ":" + r.Path
	}
}

// ParseRef parses "debian:SUITE", "oci:DIR[:TAG]" or
// "docker-archive:FILE". Relative paths are made absolute. It does not
// touch the network or the paths: Get does.
func ParseRef(s string) (Ref, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("parse image %q: no scheme: write debian:SUITE (debian:bookworm), oci:DIR[:TAG] or docker-archive:FILE", s)
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
	default:
		return Ref{}, fmt.Errorf("parse image %q: unknown scheme %q: write debian:SUITE, oci:DIR[:TAG] or docker-archive:FILE", s, scheme)
	}
}

// validSuite says whether s can be a suite name in the archive's dists/.
func validSuite(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-'
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
	// Arch is the Debian architecture.
	Arch string `json:"arch"`
	// SHA256 is Path's checksum, checked before an image is trusted.
	SHA256 string `json:"sha256"`
	// Recipe is the recipe version it was built with.
	Recipe int `json:"recipe"`
}

// UnpackOCI unpacks the OCI image ref refers to (oci: or docker-archive:)
// into the empty directory dir as a root file system, and returns the
// image's digest. The OCI package sets it; nil means vmlab was built
// without it.
var UnpackOCI func(ctx context.Context, ref Ref, dir string) (digest string, err error)

// errNoOCI is Get's error for an OCI reference when UnpackOCI is nil.
var errNoOCI = errors.New("OCI images are not built into this vmlab")
