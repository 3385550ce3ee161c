package oci

import (
	"context"
	"errors"
	"os"

	"github.com/vmlab/vmlab/internal/image"
)

// errNotRoot is the image store's error for an OCI image built by a user
// other than root.
var errNotRoot = errors.New("building a machine root from an OCI image needs root: " +
	"mkfs.erofs (erofs-utils 1.5, bookworm's) records the builder's own uid for every file, " +
	"so /etc/shadow and the rest would not belong to root in the guest; run vmlab as root " +
	"(building as another user needs mkfs.erofs --tar of erofs-utils 1.7 or newer, " +
	"which takes the owners from the layers; vmlab does not use it yet)")

// geteuid is os.Geteuid; tests replace it to be another user.
var geteuid = os.Geteuid

// The image store unpacks "oci:", "docker-archive:" and registry
// references with Unpack, bounded by the image cache's own bound and logging to the
// store's progress: a program that imports this package (the CLI, the Go
// API) has OCI images; it resolves registry references with Resolve. Only root builds them (errNotRoot), so an image's
// cache key need not say who built it.
func init() {
	image.UnpackOCI = func(ctx context.Context, ref image.Ref, dir string) (string, error) {
		if geteuid() != 0 {
			return "", errNotRoot
		}
		o := Options{MaxBytes: image.Limits.MaxBytes, Logf: image.LogfFrom(ctx)}
		return o.Unpack(ctx, ref.String(), dir)
	}
	image.ResolveRegistry = func(ctx context.Context, ref image.Ref) (string, string, error) {
		digest, id, err := Resolve(ctx, ref.String())
		if unreachable := (*UnreachableError)(nil); errors.As(err, &unreachable) {
			err = &image.UnreachableError{Err: err}
		}
		return digest, id, err
	}
	image.DigestOCI = func(ctx context.Context, ref image.Ref) (string, error) {
		return Digest(ctx, ref.String())
	}
}
