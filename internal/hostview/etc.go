package hostview

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// shadowFiles are the password and group secrets the view regenerates, with
// how. The "-" files are the backups shadow's tools keep.
var shadowFiles = []struct {
	rel  string
	lock func(line []string) []string
}{
	{"etc/shadow", lockShadow}, {"etc/shadow-", lockShadow},
	{"etc/gshadow", lockGshadow}, {"etc/gshadow-", lockGshadow},
}

// keptUnreadable are files others cannot read that the view still shares:
// sudo's policy holds no credential, and sudo refuses to run without it.
var keptUnreadable = map[string]bool{"etc/sudoers": true, "etc/sudoers.d": true}

// shadows generates the shadow files: the host's accounts, every one locked.
// The declared users are added in the guest at boot (useradd writes to the
// guest's overlay).
func (v *View) shadows(root, dir string) error {
	for _, f := range shadowFiles {
		info, err := lstat(root, f.rel)
		if err != nil {
			return err
		}
		if info == nil || !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f.rel))
		if err != nil {
			return fmt.Errorf("read host's /%s: %w", f.rel, err)
		}
		out := filepath.Join(dir, filepath.Base(f.rel))
		if err := writeLike(out, lockLines(data, f.lock), info); err != nil {
			return err
		}
		v.bind(out, filepath.Join(root, f.rel))
	}
	return nil
}

// lockLines applies lock to each account line of a colon-separated file,
// dropping empty lines and comments.
func lockLines(data []byte, lock func([]string) []string) []byte {
	var b strings.Builder
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b.WriteString(strings.Join(lock(strings.Split(line, ":")), ":"))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// lockShadow keeps an account's name only: "*" as the password (no
// password opens it) and empty aging fields (the host's dates of password
// changes are the host's), nine fields as shadow(5) has.
func lockShadow(f []string) []string {
	return []string{f[0], "*", "", "", "", "", "", "", ""}
}

// lockGshadow keeps a group's name, administrators and members (all in the
// world-readable /etc/group too) and locks its password.
func lockGshadow(f []string) []string {
	out := []string{f[0], "*", "", ""}
	copy(out[2:], f[min(len(f), 2):])
	return out
}

// machineID gives the machine its own /etc/machine-id (systemd, D-Bus and
// journald key on it), generated once per machine directory.
func (v *View) machineID(root, dir string) error {
	info, err := lstat(root, "etc/machine-id")
	if err != nil || info == nil || !info.Mode().IsRegular() {
		return err
	}
	out := filepath.Join(dir, "machine-id")
	if old, err := os.ReadFile(out); err != nil || len(old) != 33 {
		id := make([]byte, 16)
		rand.Read(id)
		if err := writeLike(out, []byte(hex.EncodeToString(id)+"\n"), info); err != nil {
			return err
		}
	}
	v.bind(out, filepath.Join(root, "etc/machine-id"))
	return nil
}

// hideUnreadable replaces every file and directory in /etc that others
// cannot read (and the view does not already replace) with an empty one
// with the host's owner and mode: the host's administrator made them
// private, so they are taken for secrets (ssl/private, security/opasswd,
// pg_hba.conf, NetworkManager's connections...).
func (v *View) hideUnreadable(root, dir string) error {
	hidden := filepath.Join(dir, "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", hidden, err)
	}
	replaced := make(map[string]bool)
	for _, b := range v.Binds {
		replaced[b.Target] = true
	}
	etc := filepath.Join(root, "etc")
	return filepath.WalkDir(etc, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("scan host's /etc: %w", err)
		}
		rel, _ := filepath.Rel(root, p)
		if replaced[p] || keptUnreadable[rel] {
			return skip(d)
		}
		if d.Type()&fs.ModeSymlink != 0 || (!d.IsDir() && !d.Type().IsRegular()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("scan host's /etc: %w", err)
		}
		if info.Mode().Perm()&0o004 != 0 {
			return nil
		}
		// Named after the path, so a reboot finds the one it made.
		src := filepath.Join(hidden, strings.ReplaceAll(rel, "/", "%"))
		if err := emptyLike(src, info); err != nil {
			return err
		}
		v.bind(src, p)
		return skip(d)
	})
}

// skip ends the walk's descent into d when it is a directory.
func skip(d fs.DirEntry) error {
	if d.IsDir() {
		return filepath.SkipDir
	}
	return nil
}

// emptyLike creates an empty file or directory at path with like's type,
// owner and mode, unless path has that type already.
func emptyLike(path string, like os.FileInfo) error {
	if old, err := os.Lstat(path); err == nil && old.Mode().Type() == like.Mode().Type() {
		return ownLike(path, like)
	}
	os.RemoveAll(path)
	var err error
	if like.IsDir() {
		err = os.Mkdir(path, 0o700)
	} else {
		err = os.WriteFile(path, nil, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return ownLike(path, like)
}
