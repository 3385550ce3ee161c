package coverage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxGuestFile caps one file read from a guest's share (a Go meta-data
// file, the agent's notes); maxStateFile caps state.json.
const (
	maxGuestFile = 64 << 20
	maxStateFile = 1 << 20
)

// ReadNoFollow reads the regular file at name, not following a link at
// its last element, refusing a file over max bytes: how the host reads
// what a guest may have written (the agent's coverage notes, the Go
// meta-data). The directories above name must be the host's.
func ReadNoFollow(name string, max int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link, not a file: not read", name)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): not read", name, st.Mode().Type())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s holds %d bytes, more than the %d read from it: not read", name, st.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s holds more than the %d bytes read from it: not read", name, max)
	}
	return b, nil
}

// CheckShare walks a machine's share (its raw directory's GuestDir) when
// the test has ended, following no link, and says why its data must not
// be merged: a symbolic link, device, pipe or socket in it (the tools
// that read the data would follow or block on them), a file over
// maxGuestFile, or more than limit bytes in all. "": the share is fine
// (or was never made).
func CheckShare(machineDir string, limit int64) (string, error) {
	root := filepath.Join(machineDir, GuestDir)
	var total int64
	var why string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		if err != nil && p != root {
			// The guest's root can make a directory the host's user
			// cannot read: its data is not read either.
			why = fmt.Sprintf("the share's %s cannot be read: %v", rel, err)
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case !t.IsRegular():
			// Removed, not only refused: a link to a host file, or a
			// device node the guest's root made over 9p, must not stay
			// in DIR for whatever archives it later.
			if why == "" {
				why = fmt.Sprintf("the share held %s, which is not a regular file or directory (%s; removed)", rel, t)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s the guest made: %w", p, err)
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			why = fmt.Sprintf("the share's %s cannot be read: %v", rel, err)
			return fs.SkipAll
		}
		if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			// A set-id program the guest's root left: not one on the host.
			if err := os.Chmod(p, info.Mode().Perm()); err != nil {
				return fmt.Errorf("clearing the set-id bits of %s the guest made: %w", p, err)
			}
		}
		if info.Size() > maxGuestFile {
			why = fmt.Sprintf("the share holds %s of %d bytes, more than the %d a file may hold", rel, info.Size(), maxGuestFile)
			return fs.SkipAll
		}
		total += info.Size()
		if total > limit {
			why = fmt.Sprintf("the share holds more than %d bytes (the cap of a machine's data in a test)", limit)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("checking the coverage share %s: %w", root, err)
	}
	return why, nil
}

// checkGoName checks a source file name taken from a guest's Go data (a
// package's file in its meta-data, a profile line) before any tool or
// file read sees it: an import path and base name ("example.com/m/x.go")
// or a clean absolute path, ending in .go, with no element "." or "..",
// no empty element, no space or control character, and not starting with
// "-" (go list would take it for a flag).
func checkGoName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("the Go data names source file %q, %s: not a Go source file's name, so not merged (the guest's share was written by something else than a program built with -cover; run the test again)", name, why)
	}
	switch {
	case name == "":
		return bad("empty")
	case strings.HasPrefix(name, "-"):
		return bad("which starts with -")
	case !strings.HasSuffix(name, ".go"):
		return bad("which does not end in .go")
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || c == '\\' {
			return bad("which holds a space, a backslash or a control character")
		}
	}
	if path.Clean(name) != name {
		return bad("which is not a clean path (an element . or .., or an empty one)")
	}
	if !path.IsAbs(name) {
		for _, el := range strings.Split(name, "/") {
			if el == "." || el == ".." || strings.HasPrefix(el, "-") {
				return bad("with an element . or .. or one starting with -")
			}
		}
		if !strings.Contains(name, "/") {
			return bad("which names no package")
		}
	}
	return nil
}

// checkGoPackage checks a package path from a guest's Go meta-data, as
// checkGoName checks a file name: it is shown, and looked up by go list.
func checkGoPackage(p goPackageMeta) error {
	if strings.HasPrefix(p.Path, "command-line-arguments (") {
		return nil // its files are absolute, each checked with the profile
	}
	if err := checkGoName(p.Path + "/x.go"); err != nil {
		return fmt.Errorf("the Go data names package %q: not a Go package's path, so not merged (the guest's share was written by something else than a program built with -cover; run the test again)", p.Path)
	}
	return nil
}
