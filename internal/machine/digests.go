package machine

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// digestStore keeps the SHA-256 sums that snapshot keys and checks need
// (QEMU's, the firmware's, a kernel's outside the cache, an image's, a
// snapshot's memory file's) from one process to the next: hashing them, with
// the cache's initramfs, took ~0.25 s of every vmlab run that restores a
// machine, more than QEMU's load of the snapshot. A sum is kept with its
// file's fileStat, which changes whenever the file's content may have (any
// write sets the inode's change time, which no user can set back). It is a
// small JSON file in the snapshot cache; "" keeps nothing. Two processes
// writing it at once lose one's entries, which are hashed again next time.
type digestStore string

// digestSettle is how long a file must have been left alone for its sum
// to be kept: a write within the same tick of the kernel's coarse clock
// leaves its times as they were (a var for tests).
var digestSettle = 2 * time.Second

// maxDigests bounds the store: a run keeps a handful of entries, and a
// replaced file's entry goes as soon as another is written.
const maxDigests = 256

// snapshotDigests is the store of the snapshot cache dir.
func snapshotDigests(dir string) digestStore {
	if dir == "" {
		return ""
	}
	return digestStore(filepath.Join(dir, "digests.json"))
}

// fileStat names the file at path as it is now: its device, inode, size,
// modification and change times.
func fileStat(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d %d %d.%09d %d.%09d", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// digest is a file's sum and the fileStat it was taken at.
type digest struct {
	Stat   string `json:"stat"`
	SHA256 string `json:"sha256"`
}

func (s digestStore) load() map[string]digest {
	m := map[string]digest{}
	if s == "" {
		return m
	}
	// As a snapshot's files: a link, a FIFO or a device there is not read.
	f, _, err := openSnapshotFile(filepath.Dir(string(s)), filepath.Base(string(s)))
	if err != nil {
		return m
	}
	defer f.Close()
	if b, err := io.ReadAll(io.LimitReader(f, maxDigestBytes)); err == nil {
		if json.Unmarshal(b, &m) != nil {
			m = map[string]digest{}
		}
	}
	return m
}

// maxDigestBytes bounds the store's size: maxDigests entries of a few
// hundred bytes each.
const maxDigestBytes = 1 << 20

// get returns the sum of the file at path kept for stat.
func (s digestStore) get(path, stat string) (string, bool) {
	d, ok := s.load()[path]
	return d.SHA256, ok && d.Stat == stat
}

// put keeps sum for the file at path at stat, and drops the entries of
// files that have changed or gone. It fails silently: the store only saves
// time.
func (s digestStore) put(path, stat, sum string) {
	var st unix.Stat_t
	if s == "" || unix.Stat(path, &st) != nil || time.Since(time.Unix(st.Ctim.Unix())) < digestSettle {
		return
	}
	m := s.load()
	for p, d := range m {
		if now, err := fileStat(p); err != nil || now != d.Stat {
			delete(m, p)
		}
	}
	m[path] = digest{Stat: stat, SHA256: sum}
	for p := range m {
		if len(m) <= maxDigests {
			break
		}
		if p != path {
			delete(m, p)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(string(s)), ".digests-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), string(s)) != nil {
		os.Remove(tmp.Name())
	}
}
