package oci

import (
	"context"
	"errors"

	"github.com/vmlab/vmlab/internal/image"
)

// The image store unpacks "oci:", "docker-archive:" and registry
// references with Unpack, and resolves registry references with Resolve: a program that imports this package (the CLI, the Go API) has
// OCI images.
func init() {
	image.UnpackOCI = func(ctx context.Context, ref image.Ref, dir string) (string, error) {
		return Unpack(ctx, ref.String(), dir)
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
