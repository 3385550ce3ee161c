package agent

import (
	"os"

	"github.com/vmlab/vmlab/internal/rootpath"
)

// mkdirInRoot makes the directory p of the guest's root, in root, as
// rootpath.Resolve resolves it, and returns where it is.
func mkdirInRoot(root, p string, mode os.FileMode) (string, error) {
	dir, err := rootpath.Resolve(root, p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return "", err
	}
	return dir, nil
}
