package resultcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Tree bounds: a share or copied directory larger than this is not hashed
// (hashing it would cost more than the test saves); its test runs, and is
// not stored. 256 MiB hash in ~0.6 s on one core.
const (
	maxTreeFiles = 20000
	maxTreeBytes = 256 << 20
)

// ErrTooLarge is returned by HashTree for a tree beyond the bounds.
var ErrTooLarge = errors.New("too large to hash for the result cache")

// Hasher hashes host files and trees, remembering each file's digest by
// its path, size, modification time and inode for the life of the
// Hasher, so that the inputs many tests share (the kernel, the vmlab
// executable) are read once per run. Safe for concurrent use.
type Hasher struct {
	mu   sync.Mutex
	seen map[fileID]string
}

type fileID struct {
	path  string
	size  int64
	mtime time.Time
	ino   uint64
}

// File returns the SHA-256 of the file at path, in hex.
func (h *Hasher) File(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	id := fileID{path: path, size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
	h.mu.Lock()
	sum, ok := h.seen[id]
	h.mu.Unlock()
	if ok {
		return sum, nil
	}
	sum, err = hashFile(path)
	if err != nil {
		return "", err
	}
	h.mu.Lock()
	if h.seen == nil {
		h.seen = make(map[fileID]string)
	}
	h.seen[id] = sum
	h.mu.Unlock()
	return sum, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}

// Path returns the digest of what is at path: a file's contents, or a
// directory's tree (Tree).
func (h *Hasher) Path(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	if fi.IsDir() {
		return h.Tree(path)
	}
	return h.File(path)
}

// Read returns the digest of what a run read at rel under base (a
// Read.Path, relative to the test file's directory), as Path would, for a
// recorded read that an entry from a server may have made up: rel must be
// local (relative, not climbing out of base), reach no further than base
// through symbolic links, and name a regular file or a directory; a file
// over 256 MiB is ErrTooLarge, a tree as Tree bounds it. The hashing stops
// when ctx ends.
func (h *Hasher) Read(ctx context.Context, base, rel string) (string, error) {
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("hash %q: not a path inside the test's directory %s", rel, base)
	}
	root, err := os.OpenRoot(base) // no component may lead out of base
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", rel, err)
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", rel, err)
	}
	switch {
	case fi.IsDir():
		d, err := root.Open(rel) // refuses a path that leaves base through a link
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", rel, err)
		}
		d.Close()
		return h.tree(ctx, filepath.Join(base, rel))
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("hash %s in %s: a %v, not a regular file or directory", rel, base, fi.Mode().Type())
	case fi.Size() > maxTreeBytes:
		return "", fmt.Errorf("hash %s in %s: more than %d MiB: %w", rel, base, maxTreeBytes>>20, ErrTooLarge)
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", rel, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("hash %s in %s: not a regular file", rel, base)
	}
	d := sha256.New()
	if err := copyCtx(ctx, d, io.LimitReader(f, maxTreeBytes+1)); err != nil {
		return "", fmt.Errorf("hash %s in %s: %w", rel, base, err)
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}

// copyCtx copies r to w until EOF or ctx ends, checking ctx every MiB.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		n, err := io.CopyN(w, r, 1<<20)
		if err == io.EOF || (err == nil && n < 1<<20) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Tree returns the digest of the directory tree at dir: every entry's
// path relative to dir, its type and permission bits, a regular file's
// contents and a symbolic link's target, in lexical order. A tree of more
// than 20000 entries or 256 MiB of files is ErrTooLarge.
func (h *Hasher) Tree(dir string) (string, error) {
	return h.tree(context.Background(), dir)
}

// tree is Tree, stopping when ctx ends.
func (h *Hasher) tree(ctx context.Context, dir string) (string, error) {
	d := sha256.New()
	var files int
	var bytes int64
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := de.Info()
		if err != nil {
			return err
		}
		if files++; files > maxTreeFiles {
			return fmt.Errorf("%s: more than %d entries: %w", dir, maxTreeFiles, ErrTooLarge)
		}
		fmt.Fprintf(d, "%q %v\n", rel, info.Mode().Type()|info.Mode().Perm())
		switch {
		case info.Mode().IsRegular():
			if bytes += info.Size(); bytes > maxTreeBytes {
				return fmt.Errorf("%s: more than %d MiB of files: %w", dir, maxTreeBytes>>20, ErrTooLarge)
			}
			sum, err := h.File(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(d, "%s\n", sum)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(d, "-> %q\n", target)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash the tree %s: %w", dir, err)
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}

// Bytes returns the SHA-256 of b, in hex.
func Bytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
