package hostview

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// sshdPaths are where sshd is installed (merged /usr or not).
var sshdPaths = []string{"usr/sbin/sshd", "sbin/sshd"}

// ssh replaces /etc/ssh, when the host has one, with a copy of its readable
// configuration and host keys of the machine's own, generated once per
// machine directory: ed25519 and ecdsa always (well under a millisecond
// each), rsa when the host has an RSA host key or sshd (0.2 to 1.0 s on the
// project's 2-core host, so it is generated in the background; Wait).
// The host's own keys are never copied, nor any other type (dsa).
func (v *View) ssh(root, dir string) error {
	info, err := lstat(root, "etc/ssh")
	if err != nil || info == nil || !info.IsDir() {
		return err
	}
	out := filepath.Join(dir, "ssh")
	if err := copyReadable(filepath.Join(root, "etc/ssh"), out); err != nil {
		return err
	}
	var later []string
	for _, t := range []string{"ed25519", "ecdsa", "rsa"} {
		switch {
		case hasKey(out, t):
		case t == "rsa" && !wantsRSA(root):
		case t == "rsa":
			later = append(later, t)
		default:
			if err := writeKey(out, t, info); err != nil {
				return err
			}
		}
	}
	v.bind(out, filepath.Join(root, "etc/ssh"))
	if len(later) == 0 {
		return nil
	}
	v.keys = make(chan struct{})
	generating.Store(dir, v)
	go func() {
		defer close(v.keys)
		defer generating.CompareAndDelete(dir, v)
		for _, t := range later {
			if err := writeKey(out, t, info); err != nil {
				v.keysErr = err
				return
			}
		}
	}()
	return nil
}

// wantsRSA reports whether the host has an RSA host key or sshd.
func wantsRSA(root string) bool {
	for _, p := range append([]string{"etc/ssh/ssh_host_rsa_key"}, sshdPaths...) {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return true
		}
	}
	return false
}

// hasKey reports whether dir holds both halves of a key of type t (one
// whose writing was cut short is made again).
func hasKey(dir, t string) bool {
	for _, p := range []string{keyPath(dir, t), keyPath(dir, t) + ".pub"} {
		if info, err := os.Stat(p); err != nil || info.Size() == 0 {
			return false
		}
	}
	return true
}

func keyPath(dir, t string) string { return filepath.Join(dir, "ssh_host_"+t+"_key") }

// writeKey generates a key of type t into dir, owned like sshDir: the
// private half 0600 (sshd refuses a key others can read), the public 0644.
func writeKey(dir, t string, sshDir os.FileInfo) error {
	k, err := keyTypes[t]("root@vmlab")
	if err != nil {
		return err
	}
	// The public half first: hasKey wants both, and a private key that
	// exists is the one sshd loads.
	if err := writeOwned(keyPath(dir, t)+".pub", k.public, 0o644, sshDir); err != nil {
		return err
	}
	return writeOwned(keyPath(dir, t), k.private, 0o600, sshDir)
}

// writeOwned writes data to path with mode and owner's owner.
func writeOwned(path string, data []byte, mode os.FileMode, owner os.FileInfo) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err := ownLike(tmp, owner)
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// copyReadable copies src's tree into dst with owners and modes: the
// directories, regular files and symbolic links that others can read, less
// the host keys at its top. What dst has already (the machine's keys) stays.
func copyReadable(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy host's %s: %w", src, err)
		}
		rel, _ := filepath.Rel(src, p)
		if filepath.Dir(rel) == "." && strings.HasPrefix(rel, "ssh_host_") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("copy host's %s: %w", p, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 && info.Mode().Perm()&0o004 == 0 {
			return skip(d)
		}
		return copyEntry(p, filepath.Join(dst, rel), info)
	})
}

// copyEntry copies one directory, file or link; other types are skipped.
func copyEntry(src, dst string, info os.FileInfo) error {
	switch {
	case info.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", dst, err)
		}
		return ownLike(dst, info)
	case info.Mode().IsRegular():
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("copy host's %s: %w", src, err)
		}
		return writeLike(dst, data, info)
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("copy host's %s: %w", src, err)
		}
		os.Remove(dst)
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("copy host's %s: %w", src, err)
		}
		return ownLike(dst, info)
	}
	return nil
}
