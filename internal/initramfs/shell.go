package initramfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/agent/forksrv"
)

// A copy of the host's shell (Spec.Shell) lets the agent start its fork
// server before the guest's root exists (internal/agent/forksrv_early.go).
// The archive holds the shell, its ELF interpreter, the libraries it needs
// (and theirs), the C.UTF-8 locale its commands run in, and glibc's
// locale.alias and gconv cache when the host has them, each at its host
// path, with every symbolic link on the way (bin -> usr/bin) as a link:
// the guest runs it as it runs the root's, by the same path.

// hostEntry is one entry of the host's tree copied into the archive.
type hostEntry struct {
	name string      // the host path, without its leading slash
	mode fs.FileMode // fs.ModeDir, fs.ModeSymlink or a regular file's
	data []byte      // a file's content or a link's target
}

// localeDirs are where glibc looks for the C.UTF-8 locale, by the name it
// normalizes it to first; the first that exists is copied.
var localeDirs = []string{"/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"}

// libDirs are the loader's system search path on Debian and Ubuntu
// (ld.so --help), which it uses without an ld.so.cache.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib", "/lib64", "/usr/lib64"}

// hostTree collects the entries of a copy of the host's files.
type hostTree struct {
	entries  []hostEntry
	seen     map[string]bool // entries' host paths
	programs map[string]bool // paths program was given
}

// shellCopy returns the entries of a copy of the host's shell at shell, and
// the manifest that says so (forksrv.ShellManifest). A host without the
// C.UTF-8 locale gets no copy: the copy's shell would not be the root's
// in every respect.
func shellCopy(shell string) ([]hostEntry, []byte, error) {
	t := &hostTree{seen: map[string]bool{}, programs: map[string]bool{}}
	if err := t.program(shell); err != nil {
		return nil, nil, fmt.Errorf("copy the host's shell %s: %w", shell, err)
	}
	locale := ""
	for _, d := range localeDirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			locale = d
			break
		}
	}
	if locale == "" {
		return nil, nil, fmt.Errorf("copy the host's shell %s: no C.UTF-8 locale in %s", shell, strings.Join(localeDirs, " or "))
	}
	err := filepath.WalkDir(locale, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return t.add(p, 0)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("copy the C.UTF-8 locale: %w", err)
	}
	for _, p := range []string{"/usr/share/locale/locale.alias", "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"} {
		if _, err := os.Stat(p); err == nil {
			if err := t.add(p, 0); err != nil {
				return nil, nil, err
			}
		}
	}
	fi, err := os.Stat(shell)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range t.entries {
		if top, _, _ := strings.Cut(e.name, "/"); slices.Contains(ownNames(), top) {
			return nil, nil, fmt.Errorf("copy the host's shell %s: /%s is the initramfs's own", shell, e.name)
		}
	}
	manifest := fmt.Appendf(nil, "%s %d %d\n", shell, fi.Size(), fi.ModTime().UnixNano())
	return t.entries, manifest, nil
}

// program adds the executable or library at p, its interpreter and the
// libraries it needs, found in libDirs.
func (t *hostTree) program(p string) error {
	if t.programs[p] {
		return nil
	}
	t.programs[p] = true
	if err := t.add(p, 0); err != nil {
		return err
	}
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return fmt.Errorf("%s: read its interpreter: %w", p, err)
		}
		if err := t.program(string(bytes.TrimRight(b, "\x00"))); err != nil {
			return err
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for _, lib := range libs {
		found := ""
		for _, d := range libDirs {
			if _, err := os.Stat(filepath.Join(d, lib)); err == nil {
				found = filepath.Join(d, lib)
				break
			}
		}
		if found == "" {
			return fmt.Errorf("%s needs %s, which is in none of %s", p, lib, strings.Join(libDirs, " "))
		}
		if err := t.program(found); err != nil {
			return err
		}
	}
	return nil
}

// add adds the host's file at p, with each directory and link on its way,
// following links as the kernel does (at most 40 of them).
func (t *hostTree) add(p string, links int) error {
	if links > 40 {
		return fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	p = path.Clean(p)
	if !path.IsAbs(p) {
		return fmt.Errorf("%s: not an absolute path", p)
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(cur)
			if err != nil {
				return err
			}
			t.entry(cur, fs.ModeSymlink, []byte(target))
			next := target
			if !path.IsAbs(target) {
				next = path.Join(path.Dir(cur), target)
			}
			return t.add(path.Join(append([]string{next}, parts[i+1:]...)...), links+1)
		case fi.IsDir():
			t.entry(cur, fs.ModeDir|fi.Mode().Perm(), nil)
		case fi.Mode().IsRegular() && i == len(parts)-1:
			data, err := os.ReadFile(cur)
			if err != nil {
				return err
			}
			t.entry(cur, fi.Mode().Perm(), data)
		default:
			return fmt.Errorf("%s: not a directory, a regular file or a link", cur)
		}
	}
	return nil
}

// entry records the entry at p once.
func (t *hostTree) entry(p string, mode fs.FileMode, data []byte) {
	if t.seen[p] {
		return
	}
	t.seen[p] = true
	t.entries = append(t.entries, hostEntry{name: strings.TrimPrefix(p, "/"), mode: mode, data: data})
}

// ErrShellCopy is in the error of a Build whose Spec.Shell could not be
// copied: a Build without it still works, with the root's shell serving.
var ErrShellCopy = errors.New("no copy of the host's shell in the initramfs")

// manifestName is forksrv.ShellManifest without its leading slash.
var manifestName = strings.TrimPrefix(forksrv.ShellManifest, "/")

// ownNames are the archive's top-level entries besides a shell copy's.
func ownNames() []string {
	return append([]string{"init", "modules", "forksrv.so", manifestName}, mountPoints...)
}
