package spec

import (
	"fmt"
	"path/filepath"
)

// Inside joins dir and rel, a path vmlab derived from user input (a machine
// name, a target directory), and refuses a rel that would leave dir: an
// absolute path, one that climbs out ("../x", "a/../../x"), an empty one.
// Symbolic links are not followed: dir's contents are vmlab's own.
func Inside(dir, rel string) (string, error) {
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q: want a relative path that stays inside %s", rel, dir)
	}
	return filepath.Join(dir, rel), nil
}
