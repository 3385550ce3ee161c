package oci

import (
	"context"

	"github.com/vmlab/vmlab/internal/image"
)

// The image store unpacks "oci:" and "docker-archive:" references with
// Unpack: a program that imports this package (the CLI, the Go API) has
// OCI images.
func init() {
	image.UnpackOCI = func(ctx context.Context, ref image.Ref, dir string) (string, error) {
		return Unpack(ctx, ref.String(), dir)
	}
	image.DigestOCI = func(ctx context.Context, ref image.Ref) (string, error) {
		return Digest(ctx, ref.String())
	}
}
