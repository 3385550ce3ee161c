// Package hostview owns what a machine sees of the host's root: the host's
// files less its secrets, plus an identity of the machine's own. Prepare
// builds a View from the host's tree (generated files go into the machine's
// directory); QEMU and virtiofsd then start in a private mount namespace in
// which View.Apply has mounted it, so the hiding holds on the host side,
// whatever a guest does with the shares (root in the guest can load modules
// and speak 9p itself).
//
// What a guest sees (docs/host-isolation.md has the whole list):
//
//   - /etc is the host's, except: shadow, gshadow (and their "-" backups)
//     are regenerated with every account locked and no host data but names
//     and group lists; machine-id is the machine's own; /etc/ssh is a copy of
//     the host's configuration with host keys generated for the machine; and
//     every other file or directory that others cannot read (ssl/private,
//     security/opasswd, pg_hba.conf...) is replaced by an empty one with the
//     host's owner and mode. sudoers and sudoers.d are kept: policy, not
//     credentials, and sudo refuses to run without them.
//   - /var is a skeleton: the host's directories two levels deep (/var/lib,
//     /var/lib/postgresql, ...) with their owners and modes, and its symbolic
//     links, but no file at all.
//
// Every function takes the root of the tree it reads, "/" in production, so
// the tests run on a fake tree.
package hostview

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// View is a machine's view of the host's root. Its zero value hides nothing.
type View struct {
	// Binds are mounted over the host's files, in order, by Apply.
	Binds []Bind
	// Var is the directory exported in place of the host's /var.
	Var string
	// keys is closed when the host keys generated in the background are
	// written; keysErr is then set.
	keys    chan struct{}
	keysErr error
}

// Bind is a file or directory mounted over a host path.
type Bind struct {
	Source, Target string
}

// Prepare builds the view of the host tree at root for one machine, writing
// what it generates into dir (created 0700; the machine's directory keeps it
// across boots, so a machine keeps its machine-id and host keys when it
// reboots). The RSA host key, when needed, is generated in the background:
// Wait says when it is written.
func Prepare(root, dir string) (*View, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create host view directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict host view directory: %w", err)
	}
	if prev, ok := generating.Load(dir); ok {
		prev.(*View).Wait() // a reboot after a failed boot: one key, not two
	}
	v := &View{}
	steps := []func(root, dir string) error{v.shadows, v.machineID, v.ssh, v.hideUnreadable, v.skeleton}
	for _, step := range steps {
		if err := step(root, dir); err != nil {
			v.Wait()
			return nil, err
		}
	}
	return v, nil
}

// generating holds, by directory, the views whose keys are still being
// generated in the background.
var generating sync.Map

// Source returns the host directory to export for hostDir, one of the
// host's top-level directories: the skeleton for /var, hostDir itself
// otherwise (and always for a nil View).
func (v *View) Source(hostDir string) string {
	if v != nil && v.Var != "" && filepath.Clean(hostDir) == "/var" {
		return v.Var
	}
	return hostDir
}

// Apply mounts the view's binds. The calling thread must be in a private
// mount namespace of its own (unshare CLONE_NEWNS, then / made private
// recursively), or the binds would show on the host. Needs CAP_SYS_ADMIN.
func (v *View) Apply() error {
	if v == nil {
		return nil
	}
	for _, b := range v.Binds {
		if err := unix.Mount(b.Source, b.Target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", b.Source, b.Target, err)
		}
	}
	return nil
}

// Wait waits for the host keys generated in the background and returns
// why they could not be written. A nil View has none.
func (v *View) Wait() error {
	if v == nil || v.keys == nil {
		return nil
	}
	<-v.keys
	return v.keysErr
}

// bind adds a bind of source over target.
func (v *View) bind(source, target string) {
	v.Binds = append(v.Binds, Bind{Source: source, Target: target})
}

// writeLike writes data to path (atomically) with like's owner and mode.
func writeLike(path string, data []byte, like os.FileInfo) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := ownLike(tmp, like); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ownLike gives path like's owner and permission bits (setuid, setgid and
// sticky too).
func ownLike(path string, like os.FileInfo) error {
	st, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("own %s: no owner in %s's file info", path, like.Name())
	}
	if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("own %s: %w", path, err)
	}
	if like.Mode()&os.ModeSymlink != 0 {
		return nil // a link's mode means nothing, and chmod would follow it
	}
	// Chmod after chown: chown clears setuid and setgid.
	if err := unix.Chmod(path, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

// lstat returns root/rel's file info, or nil when it does not exist.
func lstat(root, rel string) (os.FileInfo, error) {
	info, err := os.Lstat(filepath.Join(root, rel))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host's /%s: %w", rel, err)
	}
	return info, nil
}
