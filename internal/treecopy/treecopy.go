// Package treecopy owns the format of file copies between host and guest: a
// file or directory tree packed as a tar stream, and unpacked so that nothing
// in the stream can write outside the destination.
//
// The stream's first entry is the source itself, named "."; a directory's
// contents follow as "./name". Regular files, directories and symbolic links
// are copied with their permission bits; other file types are skipped.
// Ownership is not copied: unpacked files belong to whoever unpacks them.
package treecopy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Pack writes src (a file, a directory or a symbolic link) to w as a tar stream.
func Pack(w io.Writer, src string) error {
	tw := tar.NewWriter(w)
	info, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	if err := packEntry(tw, src, ".", info); err != nil {
		return err
	}
	if info.IsDir() {
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == src {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			return packEntry(tw, p, "./"+filepath.ToSlash(rel), info)
		})
		if err != nil {
			return fmt.Errorf("pack %s: %w", src, err)
		}
	}
	return tw.Close()
}

func packEntry(tw *tar.Writer, p, name string, info fs.FileInfo) error {
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
	} else if !info.Mode().IsRegular() && !info.IsDir() {
		return nil
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	hdr.Name = name
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("pack %s: %w", p, err)
	}
	return nil
}

// Unpack reads a tar stream made by Pack and recreates it at dst: the "."
// entry becomes dst itself, whose parent must exist. A directory's entries are
// created through an os.Root opened on dst, so no name, ".." or symbolic link
// in the stream can reach a file outside dst.
func Unpack(r io.Reader, dst string) error {
	dst = filepath.Clean(dst)
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err == io.EOF || err == nil && hdr.Name != "." {
		return fmt.Errorf("unpack to %s: the stream does not start with \".\"", dst)
	}
	if err != nil {
		return fmt.Errorf("unpack to %s: %w", dst, err)
	}
	parent, err := os.OpenRoot(filepath.Dir(dst))
	if err != nil {
		return fmt.Errorf("unpack to %s: %w", dst, err)
	}
	defer parent.Close()
	if err := unpackEntry(parent, filepath.Base(dst), hdr, tr); err != nil {
		return fmt.Errorf("unpack to %s: %w", dst, err)
	}
	if hdr.Typeflag != tar.TypeDir {
		if _, err := tr.Next(); err != io.EOF {
			return fmt.Errorf("unpack to %s: entries after a single file", dst)
		}
		return nil
	}
	root, err := parent.OpenRoot(filepath.Base(dst))
	if err != nil {
		return fmt.Errorf("unpack to %s: %w", dst, err)
	}
	defer root.Close()
	if err := unpackTree(root, tr); err != nil {
		return fmt.Errorf("unpack to %s: %w", dst, err)
	}
	return parent.Chmod(filepath.Base(dst), fs.FileMode(hdr.Mode)&fs.ModePerm)
}

// unpackTree unpacks a directory's entries into root. Directories are created
// writable and get their own modes at the end, so a read-only directory can
// still be filled.
func unpackTree(root *os.Root, tr *tar.Reader) error {
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rel, ok := strings.CutPrefix(hdr.Name, "./")
		if !ok || rel == "" || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("entry %q: not a clean relative name", hdr.Name)
		}
		if err := unpackEntry(root, rel, hdr, tr); err != nil {
			return fmt.Errorf("unpack %s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirMode{rel, fs.FileMode(hdr.Mode) & fs.ModePerm})
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

func unpackEntry(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeDir:
		// Created writable; its own mode is applied once its contents are in.
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	case tar.TypeReg:
		root.Remove(name) // replace, never write through an existing link
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return root.Chmod(name, mode)
	case tar.TypeSymlink:
		root.Remove(name)
		return root.Symlink(hdr.Linkname, name)
	default:
		return nil
	}
}
