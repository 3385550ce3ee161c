package oci

import (
	"archive/tar"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
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

// DefaultMaxBytes is Options.MaxBytes when it is 0: the image cache's own
// bound (image.Limits), as an unpacked root bigger than the whole cache
// could not be kept anyway.
const DefaultMaxBytes = 4 << 30

// maxTrailing bounds what a layer may hold after its tar end marker: tar
// pads to a 10 KiB record, so 1 MiB of zeros is already no tar writer's.
const maxTrailing = 1 << 20

// headerBytes is what each layer entry counts against the cap besides its
// content: a crafted layer of empty files must not be unbounded either.
const headerBytes = 512

// Options are Unpack's settings; the zero value is the defaults.
type Options struct {
	// MaxBytes bounds what an image unpacks to: the sizes of its regular
	// files over all its layers (a sparse file counts its full size, holes
	// included), plus 512 bytes an entry. 0 means DefaultMaxBytes. The free
	// space of dir's file system bounds it too.
	MaxBytes int64
	// Logf, if set, is told once per image what unpacking left out (device
	// nodes, privileged attributes).
	Logf func(format string, args ...any)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// flatten applies img's layers, bottom first, to dir, checking each layer's
// uncompressed content against the config's diff_ids.
func (o Options) flatten(ctx context.Context, ref string, img v1.Image, cfg *v1.ConfigFile, dir string) error {
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
	a := &applier{root: root, owners: os.Geteuid() == 0, dirModes: map[string]fs.FileMode{}}
	if a.budget, err = o.budget(ref, dir); err != nil {
		return err
	}
	for i, l := range layers {
		if err := a.layer(ctx, l, cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("applying layer %d of %d (%s): %w", i+1, len(layers), cfg.RootFS.DiffIDs[i], err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return err
	}
	if a.devices > 0 {
		o.logf("image %s: left out %d device nodes: a machine's /dev is its own devtmpfs", ref, a.devices)
	}
	if a.xattrs > 0 {
		o.logf("image %s: left out %d privileged attributes (security.capability and the like): only root can set them", ref, a.xattrs)
	}
	return nil
}

// budget is what the image may unpack to in dir: MaxBytes, or the free
// space of dir's file system when that is less.
func (o Options) budget(ref, dir string) (budget, error) {
	max := o.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	b := budget{left: max, why: fmt.Sprintf("the cap of %d MiB on an unpacked image", max>>20)}
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil {
		return budget{}, fmt.Errorf("reading free space of %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < max {
		b = budget{left: free, why: fmt.Sprintf("the %d MiB free on the file system of %s", free>>20, dir)}
	}
	b.ref = ref
	return b, nil
}

// statfs is unix.Statfs; tests replace it to have little free space.
var statfs = unix.Statfs

// budget counts down the bytes an image may still unpack to.
type budget struct {
	left int64
	why  string // what bounds it, for the error
	ref  string
}

// take counts n bytes, or says the image is too big.
func (b *budget) take(n int64) error {
	if n > b.left {
		return fmt.Errorf("image %s unpacks to more than %s: use a smaller image, or free space", b.ref, b.why)
	}
	b.left -= n
	return nil
}

// ctxReader stops reading once ctx is done, so that a canceled unpack
// (Ctrl-C) stops inside a huge entry rather than after it.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// applier writes layers into root. Every path goes through root, which
// refuses any that would leave it (a "../" entry, a symlink pointing out or
// an absolute symlink used as a directory), so a crafted layer is an error,
// never a write outside the tree.
type applier struct {
	root *os.Root
	// owners is whether to set owners and privileged attributes (as root
	// only); otherwise files belong to the caller and those attributes are
	// left out (counted in xattrs).
	owners bool
	// written holds the paths this layer made and their parent directories,
	// which an opaque marker of the same layer must keep.
	written map[string]bool
	// budget bounds what the image unpacks to.
	budget budget
	// dirModes are the modes of the directories the layers made, set by
	// finishDirs at the end: until then each is writable by its owner, so
	// that a 0555 directory (as /usr/lib in some images) can be filled
	// without root.
	dirModes map[string]fs.FileMode
	// devices and xattrs count the device nodes and privileged attributes
	// left out.
	devices, xattrs int
}

// layer applies one layer and checks its content hashes to diffID.
func (a *applier) layer(ctx context.Context, l v1.Layer, diffID v1.Hash) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(ctxReader{ctx, rc}, h)
	a.written = map[string]bool{}
	if err := a.entries(ctx, tar.NewReader(r)); err != nil {
		return err
	}
	// Hash what the tar reader left (padding after the end marker) too,
	// but not without end (a gzip bomb after the end marker).
	if n, err := io.CopyN(io.Discard, r, maxTrailing+1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading layer: %w", err)
	} else if n > maxTrailing {
		return fmt.Errorf("layer holds more than %d KiB after its end: the image is malicious or broken", maxTrailing>>10)
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
		n := int64(headerBytes)
		if hdr.Typeflag == tar.TypeReg {
			n += hdr.Size // a sparse file's full size
		}
		if err := a.budget.take(n); err != nil {
			return fmt.Errorf("unpacking %s: %w", name, err)
		}
		// Through ctx too: a sparse file's holes are made up by the tar
		// reader, with no read of the layer to see ctx done.
		if err := a.entry(name, hdr, ctxReader{ctx, tr}); err != nil {
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
		return a.remove(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
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
	return a.remove(name)
}

// remove removes name and what is under it, and forgets the modes of the
// directories it held.
func (a *applier) remove(name string) error {
	for d := range a.dirModes {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(a.dirModes, d)
		}
	}
	return a.root.RemoveAll(name)
}

// finishDirs gives the directories the layers made their modes, deepest
// first, so that none is read-only before what is under it is done.
func (a *applier) finishDirs() error {
	dirs := slices.Collect(maps.Keys(a.dirModes))
	slices.SortFunc(dirs, func(x, y string) int { return strings.Count(y, "/") - strings.Count(x, "/") })
	for _, d := range dirs {
		if err := a.root.Chmod(d, a.dirModes[d]); err != nil {
			return fmt.Errorf("setting the mode of %s: %w", d, err)
		}
	}
	return nil
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
			err = a.remove(p)
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
		a.dirModes[name] = tarMode(hdr)
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
	case tar.TypeChar, tar.TypeBlock:
		// Never made on the host, where a node for its disk would open
		// the disk to whoever can reach it; the guest's /dev is devtmpfs.
		a.devices++
		return nil
	case tar.TypeFifo:
		return a.fifo(name, hdr)
	default:
		return nil // global PAX headers, GNU sparse files: no file to make
	}
}

func (a *applier) file(name string, hdr *tar.Header, r io.Reader) error {
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// The budget took hdr.Size, and the tar reader gives no more.
	err = copySparse(f, r, hdr.Size)
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

// copySparse writes r's size bytes to f, leaving holes where a block is
// all zeros: a sparse file stays sparse (1 GiB of holes unpacks in ~0.1 s,
// not the ~11 s of writing the zeros), and so does any file with holes.
func copySparse(f *os.File, r io.Reader, size int64) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if allZero(buf[:n]) {
				_, werr := f.Seek(int64(n), io.SeekCurrent)
				err = cmp.Or(werr, err)
			} else if _, werr := f.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			// A hole at the end is only a size.
			return f.Truncate(size)
		case err != nil:
			return err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// setMeta opens the directory name to set its owner, mode and attributes
// through its descriptor; the mode is kept writable for its owner until
// finishDirs.
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
	mode := tarMode(hdr)
	if hdr.Typeflag == tar.TypeDir {
		mode |= 0o700
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, xattrPrefix) {
			continue
		}
		attr := strings.TrimPrefix(k, xattrPrefix)
		if !a.owners && privilegedXattr(attr) {
			a.xattrs++
			continue
		}
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

// tarMode is the permission and set-id bits hdr gives.
func tarMode(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// privilegedXattr reports whether only root may set attr: the security.
// namespace (file capabilities, SELinux labels) and trusted.
func privilegedXattr(attr string) bool {
	return strings.HasPrefix(attr, "security.") || strings.HasPrefix(attr, "trusted.")
}

// fifo makes a named pipe with mknodat in its parent, opened through root
// so the parent is inside it.
func (a *applier) fifo(name string, hdr *tar.Header) error {
	dir, base := path.Split(name)
	d, err := a.root.Open(path.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	mode := uint32(hdr.Mode & 0o7777)
	if err := unix.Mknodat(int(d.Fd()), base, mode|unix.S_IFIFO, 0); err != nil {
		return fmt.Errorf("making fifo: %w", err)
	}
	if err := a.lchown(name, hdr); err != nil {
		return err
	}
	// mknod applies the umask; set the mode the layer gives.
	return unix.Fchmodat(int(d.Fd()), base, mode, 0)
}
