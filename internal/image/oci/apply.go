package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Whiteout names of the OCI image-spec (layer.md): ".wh.NAME" deletes NAME
// from the layers below; ".wh..wh..opq" in a directory hides all they had there.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// xattrPrefix marks the PAX records that carry extended attributes (as GNU
// tar and docker write them), e.g. security.capability for ping.
const xattrPrefix = "SCHILY.xattr."

// flatten applies img's layers, bottom first, to dir, checking each layer's
// uncompressed content against the config's diff_ids.
func flatten(ctx context.Context, img v1.Image, cfg *v1.ConfigFile, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return fmt.Errorf("manifest lists %d layers but config %d diff_ids: the image is corrupt", len(layers), len(cfg.RootFS.DiffIDs))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening root directory: %w", err)
	}
	defer root.Close()
	a := &applier{root: root, owners: os.Geteuid() == 0}
	for i, l := range layers {
		if err := a.layer(ctx, l, cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("applying layer %d of %d (%s): %w", i+1, len(layers), cfg.RootFS.DiffIDs[i], err)
		}
	}
	return nil
}

// applier writes layers into root. Every path goes through root, which
// refuses any that would leave it (a "../" entry, a symlink pointing out or
// an absolute symlink used as a directory), so a crafted layer is an error,
// never a write outside the tree.
type applier struct {
	root *os.Root
	// owners is whether to set owners and make device nodes (as root only);
	// otherwise files belong to the caller and device nodes are skipped: a
	// guest's /dev is its own devtmpfs.
	owners bool
	// written holds the paths this layer made and their parent directories,
	// which an opaque marker of the same layer must keep.
	written map[string]bool
}

// layer applies one layer and checks its content hashes to diffID.
func (a *applier) layer(ctx context.Context, l v1.Layer, diffID v1.Hash) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(rc, h)
	a.written = map[string]bool{}
	if err := a.entries(ctx, tar.NewReader(r)); err != nil {
		return err
	}
	// Hash what the tar reader left (padding after the end marker) too.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("reading layer: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); diffID.Algorithm != "sha256" || got != diffID.Hex {
		return fmt.Errorf("layer is corrupt: its content hashes to sha256:%s, not %s", got, diffID)
	}
	return nil
}

func (a *applier) entries(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if err := a.entry(name, hdr, tr); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
}

// cleanName makes a layer entry's name relative to the root; a name that
// climbs out of it is an error.
func cleanName(n string) (string, error) {
	c := path.Clean("/" + n)[1:]
	if c == "" {
		c = "."
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("layer entry %q climbs out of the image root: the image is malicious or broken", n)
		}
	}
	return c, nil
}

func (a *applier) entry(name string, hdr *tar.Header, r io.Reader) error {
	dir, base := path.Split(name)
	dir = path.Clean(dir)
	switch {
	case name == ".":
		return nil // the root's own entry: dir is the caller's
	case base == opaqueMarker:
		if err := a.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return a.prune(dir)
	case strings.HasPrefix(base, whiteoutPrefix):
		return a.root.RemoveAll(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
	}
	if err := a.root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating parent directory: %w", err)
	}
	if err := a.clear(name, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	if err := a.create(name, hdr, r); err != nil {
		return err
	}
	for p := name; p != "."; p = path.Dir(p) {
		a.written[p] = true
	}
	return nil
}

// clear removes what lower layers left at name, unless both it and the new
// entry are directories (then the directory's content stays).
func (a *applier) clear(name string, isDir bool) error {
	st, err := a.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case isDir && st.IsDir():
		return nil
	}
	return a.root.RemoveAll(name)
}

// prune empties dir of what lower layers put there (an opaque marker),
// keeping what this layer wrote.
func (a *applier) prune(dir string) error {
	f, err := a.root.Open(dir)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		switch {
		case !a.written[p]:
			err = a.root.RemoveAll(p)
		case e.IsDir():
			err = a.prune(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) create(name string, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := a.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return a.setMeta(name, hdr)
	case tar.TypeReg:
		return a.file(name, hdr, r)
	case tar.TypeSymlink:
		if err := a.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		return a.lchown(name, hdr)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return err
		}
		return a.root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.node(name, hdr)
	default:
		return nil // global PAX headers, GNU sparse files: no file to make
	}
}

func (a *applier) file(name string, hdr *tar.Header, r io.Reader) error {
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = a.fileMeta(f, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return a.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// setMeta opens the directory name to set its owner, mode and attributes
// through its descriptor.
func (a *applier) setMeta(name string, hdr *tar.Header) error {
	f, err := a.root.Open(name)
	if err != nil {
		return err
	}
	err = a.fileMeta(f, hdr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileMeta sets an open file's owner, then its mode (a chown clears set-id
// bits), then its extended attributes.
func (a *applier) fileMeta(f *os.File, hdr *tar.Header) error {
	if a.owners {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, xattrPrefix) {
			continue
		}
		attr := strings.TrimPrefix(k, xattrPrefix)
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0); err != nil {
			return fmt.Errorf("setting attribute %s: %w", attr, err)
		}
	}
	return nil
}

func (a *applier) lchown(name string, hdr *tar.Header) error {
	if !a.owners {
		return nil
	}
	return a.root.Lchown(name, hdr.Uid, hdr.Gid)
}

// node makes a device node or fifo with mknodat in its parent, opened
// through root so the parent is inside it.
func (a *applier) node(name string, hdr *tar.Header) error {
	if !a.owners && hdr.Typeflag != tar.TypeFifo {
		return nil
	}
	dir, base := path.Split(name)
	d, err := a.root.Open(path.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(int(d.Fd()), base, mode, int(dev)); err != nil {
		return fmt.Errorf("making device node: %w", err)
	}
	if err := a.lchown(name, hdr); err != nil {
		return err
	}
	// mknod applies the umask; set the mode the layer gives.
	return unix.Fchmodat(int(d.Fd()), base, mode&0o7777, 0)
}
