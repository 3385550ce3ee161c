package machine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// errNoSnapshot says there is no snapshot of the shape yet.
var errNoSnapshot = errors.New("no snapshot")

// checkSnapshot reads dir's header and checks the files against it. The
// memory file's and the disk's hashes are checked once per process
// (checkSparseFile). It returns the state file, open and checked, at its
// start: a restore loads it (qemu.Config.IncomingState).
func checkSnapshot(dir, key string) (snapshotHeader, *os.File, error) {
	h, err := readHeader(dir)
	if err != nil {
		return h, nil, err
	}
	if h.Key != key {
		return h, nil, fmt.Errorf("its header is for shape %s", h.Key)
	}
	if err := checkSparseFile(dir, snapRAM, "memory file", h.RAM, h.RAMSHA256); err != nil {
		return h, nil, err
	}
	if h.DiskSHA256 != "" { // the disk at the point (snapshot_disk.go)
		if err := checkSparseFile(dir, snapDisk, "disk", h.Disk, h.DiskSHA256); err != nil {
			return h, nil, err
		}
	}
	state, err := checkState(dir, h)
	return h, state, err
}

// checkSparseFile checks the snapshot directory dir's file name, a memory
// file or a disk (what), against its saved size and sum: a regular file
// of that size (openSnapshotFile), whose sum checkSparse checks.
func checkSparseFile(dir, name, what string, size int64, sum string) error {
	f, fi, err := openSnapshotFile(dir, name)
	if err != nil {
		return err
	}
	f.Close()
	if fi.Size() != size {
		return fmt.Errorf("its %s has %d bytes, want %d", what, fi.Size(), size)
	}
	return checkSparse(snapshotDigests(filepath.Dir(dir)), filepath.Join(dir, name), sum, what)
}

// maxHeader bounds a snapshot header's size: vmlab's are a few hundred
// bytes.
const maxHeader = 64 << 10

// readHeader reads and checks dir's header: errNoSnapshot when there is
// none.
func readHeader(dir string) (snapshotHeader, error) {
	var h snapshotHeader
	f, fi, err := openSnapshotFile(dir, snapHeader)
	if errors.Is(err, os.ErrNotExist) {
		return h, errNoSnapshot
	}
	if err != nil {
		return h, err
	}
	defer f.Close()
	if fi.Size() > maxHeader {
		return h, fmt.Errorf("its %s has %d bytes, more than a header's %d", snapHeader, fi.Size(), maxHeader)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxHeader))
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("read %s: %w", snapHeader, err)
	}
	if sum := headerSum(h); h.Sum != sum {
		return h, fmt.Errorf("its %s is damaged (sha256 %.12s, saved %.12s)", snapHeader, sum, h.Sum)
	}
	return h, nil
}

// headerSum is the SHA-256 of h's JSON without its sum: a header damaged in
// any field, its NICs' addresses too, fails its check.
func headerSum(h snapshotHeader) string {
	h.Sum = ""
	b, _ := json.Marshal(h)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkState checks that dir's state file is the one h saved, reading no
// more than its saved size, and returns it open at its start.
func checkState(dir string, h snapshotHeader) (*os.File, error) {
	f, fi, err := openSnapshotFile(dir, snapState)
	if err != nil {
		return nil, err
	}
	n, sum := fi.Size(), ""
	if n == h.State {
		d := sha256.New()
		if n, err = io.Copy(d, io.LimitReader(f, h.State+1)); err != nil {
			f.Close()
			return nil, fmt.Errorf("read its state file: %w", err)
		}
		sum = hex.EncodeToString(d.Sum(nil))
	}
	if n != h.State || sum != h.StateSHA256 {
		f.Close()
		return nil, fmt.Errorf("its state file (%d bytes, sha256 %.12s) is not the one saved (%d bytes, sha256 %.12s)", n, sum, h.State, h.StateSHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("read its state file: %w", err)
	}
	return f, nil
}

// openSnapshotFile opens the file name of the snapshot directory dir for
// reading: a regular file only (cachefile.OpenRegular).
func openSnapshotFile(dir, name string) (*os.File, os.FileInfo, error) {
	f, fi, err := cachefile.OpenRegular(filepath.Join(dir, name))
	switch {
	case errors.Is(err, cachefile.ErrLink):
		return nil, nil, fmt.Errorf("its %s is a symbolic link", name)
	case errors.Is(err, cachefile.ErrNotRegular):
		return nil, nil, fmt.Errorf("its %s is not a regular file (%s)", name, fi.Mode().Type())
	}
	return f, fi, err
}

// sparseChecks are this process's verdicts on memory files and disks, by path and
// fileStat: hashing 512 MiB takes ~0.1 s, a tenth of a restore, so it is
// done once per process and snapshot, and a sum is kept in the snapshot
// cache's digestStore for the next process.
var sparseChecks struct {
	sync.Mutex
	m map[string]*sparseCheck
}

// sparseHashes counts the files checkSparse hashed (for tests).
var sparseHashes atomic.Int64

type sparseCheck struct {
	once sync.Once
	err  error
}

// checkSparse checks that the file at path, a snapshot's memory file or
// disk (what), hashes to want (sumSparse): once per process, and not at
// all while store has its sum.
func checkSparse(store digestStore, path, want, what string) error {
	stat, err := fileStat(path)
	if err != nil {
		return err
	}
	sparseChecks.Lock()
	if sparseChecks.m == nil {
		sparseChecks.m = make(map[string]*sparseCheck)
	}
	c := sparseChecks.m[path+" "+stat]
	if c == nil {
		c = &sparseCheck{}
		sparseChecks.m[path+" "+stat] = c
	}
	sparseChecks.Unlock()
	c.once.Do(func() {
		sum, ok := store.get(path, stat)
		if !ok {
			sparseHashes.Add(1)
			var herr error
			if sum, _, herr = sumSparse(path); herr != nil {
				c.err = herr
				return
			}
			store.put(path, stat, sum)
		}
		if sum != want {
			c.err = fmt.Errorf("its %s (sha256 %.12s) is not the one saved (sha256 %.12s)", what, sum, want)
		}
	})
	return c.err
}

// checkedSparse records that the memory file or disk at path, just
// written and hashed to sum, is whole.
func checkedSparse(store digestStore, path, sum string) {
	stat, err := fileStat(path)
	if err != nil {
		return
	}
	c := &sparseCheck{}
	c.once.Do(func() {})
	sparseChecks.Lock()
	if sparseChecks.m == nil {
		sparseChecks.m = make(map[string]*sparseCheck)
	}
	sparseChecks.m[path+" "+stat] = c
	sparseChecks.Unlock()
	store.put(path, stat, sum)
}

func sumFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// memPage is the unit sumSparse skips when it is all zeros.
const memPage = 4096

// sumSparse returns a SHA-256 of the sparse file at path (a snapshot's
// memory file or disk), and its size: of its size and of each 4 KiB page
// that is not all zeros, with its offset. It reads only the file's data
// (SEEK_DATA; a hole reads as zeros): a snapshot's 512 MiB file holds
// ~140 MiB a guest wrote, and a plain SHA-256 of all of it took 0.5-1.8 s
// of every take. The sum does not depend on which zero pages the file
// system stores.
func sumSparse(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	sum := newPageSum(fi.Size())
	err = eachPageRun(f, fi.Size(), func(off int64, run []byte) error {
		sum.add(off, run)
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	return sum.String(), fi.Size(), nil
}

// copyPages writes the pages of src that are not all zeros to dst, at
// their offsets (dst is truncated to src's size, so the others are holes),
// and returns sumSparse's sum of them and src's size: a snapshot's memory
// file and disk are hashed as they are written, not read back.
func copyPages(dst, src *os.File) (string, int64, error) {
	fi, err := src.Stat()
	if err != nil {
		return "", 0, err
	}
	size := fi.Size()
	if err := dst.Truncate(size); err != nil {
		return "", 0, fmt.Errorf("write %s: %w", dst.Name(), err)
	}
	sum := newPageSum(size)
	err = eachPageRun(src, size, func(off int64, run []byte) error {
		sum.add(off, run)
		_, err := dst.WriteAt(run, off)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("write %s: %w", dst.Name(), err)
	}
	return sum.String(), size, nil
}

// eachRun calls fn with each run of consecutive pages of buf, read at
// offset off, that are not all zeros.
func eachRun(buf []byte, off int64, fn func(off int64, run []byte) error) error {
	var zero [memPage]byte
	first := -1 // the start of the current run
	for i := 0; i < len(buf); i += memPage {
		page := buf[i:min(i+memPage, len(buf))]
		switch {
		case !bytes.Equal(page, zero[:len(page)]):
			if first < 0 {
				first = i
			}
		case first >= 0:
			if err := fn(off+int64(first), buf[first:i]); err != nil {
				return err
			}
			first = -1
		}
	}
	if first >= 0 {
		return fn(off+int64(first), buf[first:])
	}
	return nil
}

// pageSum is sumSparse's hash, written page by page.
type pageSum struct{ h hash.Hash }

func newPageSum(size int64) pageSum {
	s := pageSum{sha256.New()}
	fmt.Fprintf(s.h, "vmlab memory %d\n", size)
	return s
}

// add hashes run, whole pages that are not all zeros at offset off.
func (s pageSum) add(off int64, run []byte) {
	var b [8]byte
	for i := 0; i < len(run); i += memPage {
		binary.LittleEndian.PutUint64(b[:], uint64(off)+uint64(i))
		s.h.Write(b[:])
		s.h.Write(run[i:min(i+memPage, len(run))])
	}
}

func (s pageSum) String() string { return hex.EncodeToString(s.h.Sum(nil)) }

// eachPageRun calls fn, in order, with each run of consecutive pages of
// f's first size bytes that are not all zeros (at most 256 KiB at once;
// fn must not keep run). It reads only f's data (SEEK_DATA).
func eachPageRun(f *os.File, size int64, fn func(off int64, run []byte) error) error {
	buf := make([]byte, 64*memPage)
	for pos := int64(0); pos < size; {
		data, err := unix.Seek(int(f.Fd()), pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // nothing but a hole up to the end
		}
		if err != nil {
			data = pos // no SEEK_DATA here: read everything
		}
		end, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			end = size
		}
		// Whole pages: a data extent starts and ends on block boundaries.
		data -= data % memPage
		for p := data; p < end; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), end-p)], p)
			if n == 0 && err != nil {
				return fmt.Errorf("read %s: %w", f.Name(), err)
			}
			if err := eachRun(buf[:n], p, fn); err != nil {
				return err
			}
			p += int64(n)
		}
		pos = end
	}
	return nil
}

// fileDigests are this process's SHA-256 sums of files, by path and
// fileStat: a kernel's, an initramfs's, QEMU's, a machine image's (~0.3 s
// for a 100 MiB image), hashed once for every snapshot key of a run.
var fileDigests struct {
	sync.Mutex
	m map[string]string
}

// fileDigest returns the SHA-256 of the file at path: hashed once per
// process while the file stays the same, and not at all while store has
// it.
func fileDigest(store digestStore, path string) (string, error) {
	stat, err := fileStat(path)
	if err != nil {
		return "", err
	}
	k := path + " " + stat
	fileDigests.Lock()
	defer fileDigests.Unlock()
	if sum, ok := fileDigests.m[k]; ok {
		return sum, nil
	}
	sum, ok := store.get(path, stat)
	if !ok {
		if sum, _, err = sumFile(path); err != nil {
			return "", err
		}
		store.put(path, stat, sum)
	}
	if fileDigests.m == nil {
		fileDigests.m = make(map[string]string)
	}
	fileDigests.m[k] = sum
	return sum, nil
}
