// Package oci turns a container image into a machine's root tree: it owns
// reading OCI image layouts ("oci:DIR[:TAG]"), `docker save` tarballs
// ("docker-archive:FILE") and registry references ("docker.io/library/postgres:16"),
// picking the linux/amd64 image, checking every blob against its digest and
// flattening the layers into a directory (see apply.go).
//
// The image formats are read with github.com/google/go-containerregistry;
// the layers are applied by this package through an os.Root so that no entry
// of a layer, however crafted, writes outside the directory.
//
// Call Unpack from the image store (internal/image) with an empty directory
// that it then packs into the machine's read-only root image; Digest names an
// image without unpacking it, so a cached root can be found first.
package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The platform every machine runs: guests boot the host's x86-64 kernel.
const (
	wantOS   = "linux"
	wantArch = "amd64"
)

// refNameAnnotation is the index.json annotation that carries a manifest's tag
// in an OCI image layout (image-spec annotations.md).
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Unpack flattens the linux/amd64 image that ref names into dir and returns
// the image's ID, the digest of its config ("sha256:…"), which names its
// layers' contents and so is the key to cache the unpacked root by. The same
// image read from a layout, a docker-archive or a registry has the same ID.
//
// ref is "oci:DIR[:TAG]", "docker-archive:FILE" or a registry reference
// ("docker.io/library/postgres:16", optionally prefixed "docker://"), pulled
// with the credentials of the standard docker config and credential helpers.
// dir is created if missing and must be empty. Every blob is checked against
// its digest; a corrupt image is an error, and dir is then left partly
// written for the caller to remove. Unpack is Options{}.Unpack: it unpacks
// at most DefaultMaxBytes.
func Unpack(ctx context.Context, ref, dir string) (string, error) {
	return Options{}.Unpack(ctx, ref, dir)
}

// Unpack is the package's Unpack with o's bound and log.
func (o Options) Unpack(ctx context.Context, ref, dir string) (string, error) {
	img, err := open(ctx, ref)
	if err != nil {
		return "", err
	}
	id, cfg, err := checkConfig(img)
	if err != nil {
		return "", fmt.Errorf("reading image %s: %w", ref, err)
	}
	if err := prepareDir(dir); err != nil {
		return "", fmt.Errorf("unpacking image %s: %w", ref, err)
	}
	if err := o.flatten(ctx, ref, img, cfg, dir); err != nil {
		return "", fmt.Errorf("unpacking image %s into %s: %w", ref, dir, err)
	}
	return id, nil
}

// Digest returns the ID of the linux/amd64 image that ref names (as Unpack
// does) reading only its index, manifest and config, not its layers.
func Digest(ctx context.Context, ref string) (string, error) {
	img, err := open(ctx, ref)
	if err != nil {
		return "", err
	}
	id, _, err := checkConfig(img)
	if err != nil {
		return "", fmt.Errorf("reading image %s: %w", ref, err)
	}
	return id, nil
}

// open finds the linux/amd64 image that ref names.
func open(ctx context.Context, ref string) (v1.Image, error) {
	var img v1.Image
	var err error
	switch {
	case strings.HasPrefix(ref, "oci:"):
		img, err = openLayout(strings.TrimPrefix(ref, "oci:"))
	case strings.HasPrefix(ref, "docker-archive:"):
		img, err = openArchive(strings.TrimPrefix(ref, "docker-archive:"))
	default:
		img, err = openRemote(ctx, strings.TrimPrefix(ref, "docker://"))
	}
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", ref, err)
	}
	return img, nil
}

// splitLayoutRef splits "DIR[:TAG]": a colon starts a tag unless the whole
// string names a directory or the part after it holds a slash.
func splitLayoutRef(s string) (dir, tag string) {
	if st, err := os.Stat(s); err == nil && st.IsDir() {
		return s, ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.ContainsRune(s[i+1:], '/') {
		return s, ""
	}
	return s[:i], s[i+1:]
}

func openLayout(s string) (v1.Image, error) {
	dir, tag := splitLayoutRef(s)
	if dir == "" {
		return nil, fmt.Errorf("no directory named: write oci:DIR[:TAG]")
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout %s (want a directory with oci-layout and index.json): %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index.json: %w", err)
	}
	if tag == "" && len(m.Manifests) > 1 && untagged(m) {
		// With no tags to choose by, index.json is taken as a multi-platform
		// index (as some tools write it) and the platform chooses.
		return pickPlatform(idx)
	}
	desc, err := pickTag(m, tag)
	if err != nil {
		return nil, err
	}
	return fromDescriptor(idx, desc)
}

// untagged reports whether no manifest of m carries a tag.
func untagged(m *v1.IndexManifest) bool {
	for _, d := range m.Manifests {
		if d.Annotations[refNameAnnotation] != "" {
			return false
		}
	}
	return true
}

// pickTag returns the manifest of index.json tagged tag, or its only one when
// tag is "".
func pickTag(m *v1.IndexManifest, tag string) (v1.Descriptor, error) {
	var tags []string
	for _, d := range m.Manifests {
		t := d.Annotations[refNameAnnotation]
		if tag != "" && t == tag {
			return d, nil
		}
		if t != "" {
			tags = append(tags, t)
		}
	}
	switch {
	case tag == "" && len(m.Manifests) == 1:
		return m.Manifests[0], nil
	case len(m.Manifests) == 0:
		return v1.Descriptor{}, fmt.Errorf("index.json lists no image")
	case tag == "":
		return v1.Descriptor{}, fmt.Errorf("index.json lists %d images: name one as oci:DIR:TAG (tags: %s)", len(m.Manifests), listOrNone(tags))
	default:
		return v1.Descriptor{}, fmt.Errorf("no image tagged %q in index.json (tags: %s)", tag, listOrNone(tags))
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// fromDescriptor reads the manifest desc names in idx, checking its digest:
// an image, or an index to pick the linux/amd64 image from.
func fromDescriptor(idx v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	switch {
	case desc.MediaType.IsIndex():
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading image index %s: %w", desc.Digest, err)
		}
		if err := checkRaw(child.RawManifest, desc.Digest, "image index"); err != nil {
			return nil, err
		}
		return pickPlatform(child)
	case desc.MediaType.IsImage():
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading image manifest %s: %w", desc.Digest, err)
		}
		if err := checkRaw(img.RawManifest, desc.Digest, "image manifest"); err != nil {
			return nil, err
		}
		return img, nil
	default:
		return nil, fmt.Errorf("manifest %s has media type %q, neither an image nor an index", desc.Digest, desc.MediaType)
	}
}

// pickPlatform returns the linux/amd64 image of a multi-platform index, or an
// error naming the platforms it has.
func pickPlatform(idx v1.ImageIndex) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading image index: %w", err)
	}
	var have []string
	for _, d := range m.Manifests {
		p := d.Platform
		if p == nil {
			p = configPlatform(idx, d)
		}
		if p == nil || p.OS == "unknown" {
			continue // attestations and the like, not images to run
		}
		if p.OS == wantOS && p.Architecture == wantArch {
			return fromDescriptor(idx, d)
		}
		have = append(have, p.String())
	}
	return nil, fmt.Errorf("no %s/%s image in the index (it has %s): machines run the host's x86-64 kernel, so use an amd64 image", wantOS, wantArch, listOrNone(have))
}

// configPlatform reads the platform of an index's image whose descriptor
// names none from the image's config; nil if it is no image or names none.
func configPlatform(idx v1.ImageIndex, d v1.Descriptor) *v1.Platform {
	if !d.MediaType.IsImage() {
		return nil
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil
	}
	cfg, err := img.ConfigFile()
	if err != nil || cfg.Architecture == "" {
		return nil
	}
	return &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
}

func openArchive(file string) (v1.Image, error) {
	if file == "" {
		return nil, fmt.Errorf("no file named: write docker-archive:FILE")
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("reading docker-archive: %w", err)
	}
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		return nil, fmt.Errorf("reading docker-archive %s (want a `docker save` tarball of one image): %w", file, err)
	}
	return img, nil
}

// openRemote finds the linux/amd64 image the registry reference s names.
func openRemote(ctx context.Context, s string) (v1.Image, error) {
	_, img, err := getRemote(ctx, s)
	return img, err
}

// getRemote fetches what the registry reference s names: the descriptor of
// its manifest or index (whose digest is what a tag resolves to now) and
// its linux/amd64 image. Loopback registries (localhost, 127.0.0.1, [::1])
// are spoken to over plain HTTP, every other over HTTPS only. Credentials
// come from the docker config and its credential helpers.
func getRemote(ctx context.Context, s string) (*remote.Descriptor, v1.Image, error) {
	var opts []name.Option
	if isLoopback(registryHost(s)) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("not an image reference (want oci:DIR[:TAG], docker-archive:FILE or REGISTRY/REPO:TAG): %w", err)
	}
	reg := ref.Context().RegistryStr()
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(httpsOnly{remote.DefaultTransport}))
	if err != nil {
		return nil, nil, registryError(ctx, ref, reg, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, nil, fmt.Errorf("reading image index: %w", err)
		}
		img, err := pickPlatform(idx)
		return desc, img, err
	}
	img, err := desc.Image()
	return desc, img, err
}

// UnreachableError is the error of a registry that could not be reached
// at all (no connection, no name, no answer in time), as opposed to one
// that answered with an error.
type UnreachableError struct {
	Registry string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("registry %s unreachable: %v", e.Registry, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// registryError says what went wrong fetching ref from the registry reg:
// credentials refused (and how to give them), the registry unreachable (an
// *UnreachableError), or what it answered.
func registryError(ctx context.Context, ref name.Reference, reg string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden {
			return fmt.Errorf("fetching manifest from registry %s: %w", reg, err)
		}
		login := fmt.Sprintf("give them with `docker login %s` (its config.json is in ~/.docker or $DOCKER_CONFIG: auths, credHelpers or credsStore)", reg)
		status := fmt.Sprintf("HTTP %d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
		if auth, kerr := authn.DefaultKeychain.Resolve(ref.Context()); kerr == nil && auth == authn.Anonymous {
			return fmt.Errorf("registry %s refused the pull of %s without credentials (%s), and the docker config has none for it: %s", reg, ref.Context().RepositoryStr(), status, login)
		}
		return fmt.Errorf("registry %s refused the credentials the docker config gives for it (%s): %s", reg, status, login)
	}
	var operr *net.OpError
	var dnserr *net.DNSError
	if ctx.Err() == nil && (errors.As(err, &operr) || errors.As(err, &dnserr)) {
		return &UnreachableError{Registry: reg, Err: err}
	}
	return fmt.Errorf("fetching manifest from registry %s: %w", reg, err)
}

// registryHost returns the first component of a registry reference, less
// a "docker://" prefix.
func registryHost(s string) string {
	host, _, _ := strings.Cut(strings.TrimPrefix(s, "docker://"), "/")
	return host
}

// isLoopback says whether the registry host (with or without a port) is
// this machine's loopback: the only registries spoken to over plain HTTP.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpsOnly refuses plain HTTP to anything but a loopback host: the
// registry library also tries HTTP with hosts of private networks, and a
// token server may be named by an http:// URL.
type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !isLoopback(req.URL.Host) {
		return nil, fmt.Errorf("plain HTTP to %s refused: only loopback registries (localhost, 127.0.0.1, [::1]) are spoken to without TLS", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}

// resolveTimeout bounds Resolve: a registry that does not answer in it
// is taken as unreachable.
var resolveTimeout = 20 * time.Second

var errNoAnswer = errors.New("no answer in 20 s")

// Resolve asks the registry what the registry reference ref names now: the
// digest of its manifest or index ("sha256:…", what a tag resolves to),
// and the ID of its linux/amd64 image (the config digest Unpack returns),
// reading no layer. A registry that cannot be reached is an
// *UnreachableError. The registry has 20 s to answer.
func Resolve(ctx context.Context, ref string) (digest, id string, err error) {
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, resolveTimeout, errNoAnswer)
	defer cancel()
	desc, img, err := getRemote(ctx, ref)
	if err == nil {
		id, _, err = checkConfig(img)
	}
	var unreachable *UnreachableError
	switch {
	case err == nil:
	case errors.As(err, &unreachable):
		return "", "", err
	case parent.Err() == nil && context.Cause(ctx) == errNoAnswer:
		return "", "", &UnreachableError{Registry: registryHost(ref), Err: errNoAnswer}
	default:
		return "", "", fmt.Errorf("reading image %s: %w", ref, err)
	}
	return desc.Digest.String(), id, nil
}

// checkConfig reads img's config, checks it against the digest its manifest
// gives and that it is a linux/amd64 image, and returns its digest.
func checkConfig(img v1.Image) (string, *v1.ConfigFile, error) {
	m, err := img.Manifest()
	if err != nil {
		return "", nil, fmt.Errorf("reading image manifest: %w", err)
	}
	h := m.Config.Digest
	if err := checkRaw(img.RawConfigFile, h, "config"); err != nil {
		return "", nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", nil, fmt.Errorf("reading config %s: %w", h, err)
	}
	// An image that names no platform (hand-made, like a scratch image built
	// by a test) is taken as what the host runs.
	if (cfg.OS != "" && cfg.OS != wantOS) || (cfg.Architecture != "" && cfg.Architecture != wantArch) {
		p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		return "", nil, fmt.Errorf("image is for %s, not %s/%s: machines run the host's x86-64 kernel, so use an amd64 image", p.String(), wantOS, wantArch)
	}
	return h.String(), cfg, nil
}

// checkRaw checks that the bytes read returns hash to want.
func checkRaw(read func() ([]byte, error), want v1.Hash, what string) error {
	b, err := read()
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", what, want, err)
	}
	if want.Algorithm != "sha256" {
		return fmt.Errorf("reading %s %s: digest algorithm %q is not supported (want sha256)", what, want, want.Algorithm)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want.Hex {
		return fmt.Errorf("%s is corrupt: its content hashes to sha256:%s, not %s", what, got, want)
	}
	return nil
}

// prepareDir creates dir, or checks that it is an empty directory: whiteouts
// delete files, so they must be only the image's own.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating root directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading root directory %s: %w", dir, err)
	}
	if len(ents) > 0 {
		names := make([]string, 0, 3)
		for _, e := range ents[:min(3, len(ents))] {
			names = append(names, filepath.Join(dir, e.Name()))
		}
		return fmt.Errorf("root directory %s is not empty (holds %s): unpack into a new directory", dir, strings.Join(names, ", "))
	}
	return nil
}
