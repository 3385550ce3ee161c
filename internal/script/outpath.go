package script

import (
	"fmt"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/spec"
)

// copyTarget returns where copy_from_vm(src, target_dir = dir) puts its
// copy: the directory out/files/dir and the path in it named after src.
// Both come from the test file, so both must stay inside out/files: an
// absolute dir, one that climbs ("../x"), or a src whose last element is
// ".." or "/" is refused.
func copyTarget(out, dir, src string) (target, dst string, err error) {
	if dir == "" {
		dir = "."
	}
	target, err = spec.Inside(filepath.Join(out, "files"), dir)
	if err != nil {
		return "", "", fmt.Errorf("copy_from_vm: target_dir %q must be relative to the test's output directory: %w", dir, err)
	}
	dst, err = spec.Inside(target, filepath.Base(src))
	if err != nil {
		return "", "", fmt.Errorf("copy_from_vm: source %q: its name cannot be a file's in the output directory: %w", src, err)
	}
	return target, dst, nil
}
