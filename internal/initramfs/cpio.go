package initramfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Mode bits of the newc header's mode field (the S_IF* constants of stat(2)).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

const (
	newcMagic     = "070701"
	newcHeaderLen = 110
	trailerName   = "TRAILER!!!"
)

// Writer writes an uncompressed cpio archive in the "newc" format, the one the
// kernel unpacks into its initial root filesystem (the kernel tree's
// Documentation/driver-api/early-userspace/buffer-format.rst). Every entry is
// owned by root, has mtime 0 and a fresh inode number, so the same entries
// always give the same bytes.
//
// The first error sticks: later calls return it and write nothing. After
// Close, adding entries fails and Close does nothing.
type Writer struct {
	w      io.Writer
	n      int64  // bytes written, for 4-byte alignment
	ino    uint32 // last inode number used
	err    error
	closed bool
}

var errClosed = errors.New("write cpio archive: already closed")

// NewWriter returns a Writer that writes the archive to w. Call Close to
// finish it; Close does not close w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Dir adds a directory.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	return w.entry(name, modeDir|agentproto.UnixMode(perm), 2, nil, 0, 0)
}

// File adds a regular file holding data.
func (w *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return w.entry(name, modeRegular|agentproto.UnixMode(perm), 1, data, 0, 0)
}

// Symlink adds a symbolic link to target.
func (w *Writer) Symlink(name, target string) error {
	return w.entry(name, modeSymlink|0o777, 1, []byte(target), 0, 0)
}

// CharDev adds a character device node.
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return w.entry(name, modeCharDev|agentproto.UnixMode(perm), 1, nil, major, minor)
}

// Close writes the TRAILER!!! record that ends the archive.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.writeHeader(trailerName, 0, 0, 1, 0, 0, 0)
	err := w.err
	w.err = errClosed
	return err
}

func (w *Writer) entry(name string, mode, nlink uint32, data []byte, major, minor uint32) error {
	if w.err != nil {
		return w.err
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" || name == trailerName || strings.ContainsRune(name, 0) {
		w.err = fmt.Errorf("add %q to cpio archive: invalid name", name)
		return w.err
	}
	if uint64(len(data)) > 0xffffffff {
		w.err = fmt.Errorf("add %q to cpio archive: %d bytes is over newc's 4 GiB limit", name, len(data))
		return w.err
	}
	w.ino++
	w.writeHeader(name, w.ino, mode, nlink, uint32(len(data)), major, minor)
	w.write(data)
	w.pad()
	return w.err
}

// writeHeader writes the 110-byte header (magic and thirteen 8-digit hex
// fields), the NUL-terminated name and the padding to a 4-byte boundary.
func (w *Writer) writeHeader(name string, ino, mode, nlink, size, major, minor uint32) {
	fields := []uint32{
		ino, mode, 0, 0, nlink, 0, size, // ino, mode, uid, gid, nlink, mtime, filesize
		0, 0, major, minor, // devmajor, devminor, rdevmajor, rdevminor
		uint32(len(name) + 1), 0, // namesize including the NUL, check
	}
	hdr := make([]byte, 0, newcHeaderLen+len(name)+4)
	hdr = append(hdr, newcMagic...)
	for _, f := range fields {
		hdr = fmt.Appendf(hdr, "%08X", f)
	}
	hdr = append(hdr, name...)
	hdr = append(hdr, 0)
	w.write(hdr)
	w.pad()
}

func (w *Writer) write(b []byte) {
	if w.err != nil || len(b) == 0 {
		return
	}
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write cpio archive: %w", err)
	}
}

var zeros [3]byte

// pad writes zeros up to the next 4-byte boundary.
func (w *Writer) pad() { w.write(zeros[:(4-w.n%4)%4]) }
