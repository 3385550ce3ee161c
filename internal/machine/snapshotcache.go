package machine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// The snapshot cache (docs/snapshots.md): DIR/snapshots/KEY, one
// directory a shape, bounded by SnapshotLimits like the cache's files
// (cachefile.TrimDirs: the least recently used go first, none that a
// restored machine maps). Every vmlab build changes every key, so old
// snapshots would otherwise stay for good.

// SnapshotLimits bound the snapshot cache; it is trimmed after every
// snapshot taken. A snapshot takes what its guest wrote before the
// snapshot point on disk (~100-200 MiB of a 512 MiB machine's sparse
// memory file) and a few MiB of device state.
var SnapshotLimits = cachefile.Limits{MaxBytes: 2 << 30, MaxAge: 7 * 24 * time.Hour, Grace: 10 * time.Minute}

// SnapshotDir is the snapshot cache under the cache directory cache.
func SnapshotDir(cache string) string { return filepath.Join(cache, "snapshots") }

// ListSnapshots returns the snapshot cache's entries (none when there is
// no cache), least recently used first: KEY, and .tmp-KEY-* (being taken,
// or left by a run that was killed) and .bad-KEY-* (set aside after a
// failed check or restore) as Temp.
func ListSnapshots(dir string) ([]cachefile.Entry, error) {
	entries, err := cachefile.ListDirs(dir, snapRAM)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// TrimSnapshots evicts the snapshots beyond l and the temporary and set
// aside directories nobody uses, removes the lock files of the shapes
// that have no snapshot left, and returns what it evicted.
func TrimSnapshots(dir string, l cachefile.Limits) ([]cachefile.Entry, error) {
	removed, err := cachefile.TrimDirs(dir, snapRAM, l)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return removed, err
	}
	sweepSnapshotLocks(dir)
	return removed, nil
}

// CleanSnapshots evicts every snapshot no running machine uses, and
// forgets the sums of files kept beside them (digestStore).
func CleanSnapshots(dir string) ([]cachefile.Entry, error) {
	os.Remove(string(snapshotDigests(dir)))
	return TrimSnapshots(dir, cachefile.Limits{})
}

// sweepSnapshotLocks removes KEY.lock where there is no KEY directory and
// nobody holds it (no take under way), under its lock: a take checks,
// once it has the lock, that the file is still the one at the path.
func sweepSnapshotLocks(dir string) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		key, ok := strings.CutSuffix(de.Name(), ".lock")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, key)); err == nil {
			continue
		}
		p := filepath.Join(dir, de.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}
