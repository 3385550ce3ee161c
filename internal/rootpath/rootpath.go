// Package rootpath resolves a path of a root file system held in a
// directory, its symlinks followed inside that directory.
package rootpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symlinks Resolve follows for one path, as the
// kernel's 40 (ELOOP) does.
const maxLinks = 40

// Resolve returns where p, a path of a root file system, is in root (a
// directory holding that file system: the agent's new root before the
// switch, an image's tree on the host), following symlinks as a process
// whose "/" is root would: an absolute target is resolved from root, and
// ".." never climbs above root. An image's /lib -> /usr/lib then leads to
// root/usr/lib, where a plain filepath.Join(root, "lib/modules") would
// lead elsewhere (the initramfs's /usr/lib, the host's). The result holds
// no symlink among the components that exist; those that do not are
// appended as they are.
func Resolve(root, p string) (string, error) {
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	var done []string // resolved components, below root
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := filepath.Join(root, filepath.Join(done...), c)
		st, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return filepath.Join(append([]string{root}, append(append(done, c), rest...)...)...), nil
		case err != nil:
			return "", err
		case st.Mode()&fs.ModeSymlink == 0:
			done = append(done, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s in %s: more than %d symlinks", p, root, maxLinks)
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = nil
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(append([]string{root}, done...)...), nil
}
