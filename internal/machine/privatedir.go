package machine

import (
	"fmt"
	"os"
	"syscall"
)

// privateDir makes dir (and its parents) when missing and makes sure it is
// this process's own directory, mode 0700: the machine's sockets (QMP, the
// agent's, a VNC screen) live in it with no access control of their own,
// so a directory someone else made there first, or a link to one, is
// refused rather than used.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("machine directory %s is not a directory (a link?): remove it or choose another output directory", dir)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("machine directory %s belongs to user %d, not to this one (%d): anyone it lets in could reach the machine's sockets; remove it or choose another output directory", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make machine directory %s private: %w", dir, err)
		}
	}
	return nil
}
