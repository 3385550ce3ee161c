package hostview

import (
	"fmt"
	"os"
	"path/filepath"
)

// skeleton builds the /var the guest gets in place of the host's: every
// directory of the host's /var two levels deep (/var/lib, then
// /var/lib/postgresql) with its owner and mode, and the symbolic links at
// those levels (/var/run -> /run), but no file: /var holds the host's
// services' data, logs, mail, spools and caches (a host PostgreSQL cluster,
// debconf's passwords.dat, shadow's backups in /var/backups). Packages'
// services still find the directories they expect and create the rest in
// the guest's overlay. It is built at a machine's first boot (5 to 13 ms
// for this host's 56 entries on ext4) and kept for the next: the host's
// directories do not come and go during a test.
func (v *View) skeleton(root, dir string) error {
	info, err := lstat(root, "var")
	if err != nil || info == nil || !info.IsDir() {
		return err
	}
	out := filepath.Join(dir, "var")
	if _, err := os.Stat(filepath.Join(dir, skeletonDone)); err == nil {
		v.Var = out
		return nil
	}
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("clear %s: %w", out, err)
	}
	if err := v.buildSkeleton(root, out, info); err != nil {
		return err
	}
	// Outside the skeleton, or the guest would see it.
	if err := os.WriteFile(filepath.Join(dir, skeletonDone), nil, 0o600); err != nil {
		return fmt.Errorf("mark the /var skeleton built: %w", err)
	}
	v.Var = out
	return nil
}

// skeletonDone, next to the skeleton, says it was built in full.
const skeletonDone = "var.done"

// buildSkeleton builds the skeleton of root's /var in out.
func (v *View) buildSkeleton(root, out string, info os.FileInfo) error {
	if err := copyEntry(filepath.Join(root, "var"), out, info); err != nil {
		return err
	}
	if err := copyLevel(filepath.Join(root, "var"), out, 2); err != nil {
		return err
	}
	// D-Bus reads its machine ID here when /etc's is missing; the host's
	// is a copy of the host's ID, the guest's points at its own.
	if _, err := os.Lstat(filepath.Join(root, "var/lib/dbus/machine-id")); err == nil {
		if err := os.Symlink("/etc/machine-id", filepath.Join(out, "lib/dbus/machine-id")); err != nil {
			return fmt.Errorf("link the machine ID for D-Bus: %w", err)
		}
	}
	return nil
}

// copyLevel copies src's directories and symbolic links into dst, depth
// levels down; files are left out.
func copyLevel(src, dst string, depth int) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("read host's %s: %w", src, err)
	}
	for _, e := range entries {
		if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("read host's %s: %w", src, err)
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if err := copyEntry(from, to, info); err != nil {
			return err
		}
		if e.IsDir() && depth > 1 {
			if err := copyLevel(from, to, depth-1); err != nil {
				return err
			}
		}
	}
	return nil
}
