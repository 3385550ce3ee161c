package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symlinks inRoot follows for one path, as the
// kernel's 40 (ELOOP) does.
const maxLinks = 40

// inRoot returns where p, a path of the guest's root, is in root (newRoot,
// as init sees it before the switch), following symlinks as the guest
// would: an absolute target is resolved from root, not from the initramfs,
// and ".." never climbs above root. An image's /lib -> /usr/lib then
// leads to root/usr/lib, where a plain filepath.Join(root, "lib/modules")
// would lead the kernel to the initramfs's /usr/lib. The result holds no
// symlink among the components that exist; those that do not are
// appended as they are.
func inRoot(root, p string) (string, error) {
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
			return "", fmt.Errorf("resolve %s in the new root: more than %d symlinks", p, maxLinks)
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

// mkdirInRoot makes the directory p of the guest's root, in root, as
// inRoot resolves it, and returns where it is.
func mkdirInRoot(root, p string, mode os.FileMode) (string, error) {
	dir, err := inRoot(root, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return "", err
	}
	return dir, nil
}
