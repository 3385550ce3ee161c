package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Temporary directories (a machine's sockets and console log, a run's
// reports) are removed by the process that made them. A process killed with
// SIGKILL cannot do that, so each such directory holds an owner file the
// owner keeps locked (flock, exclusive) for as long as the directory is
// its to remove. The kernel drops the lock when the process dies, however
// it dies, so the next vmlab process that prepares a boot or makes a
// temporary directory removes the directories whose owner file nobody holds.
//
// The owner file holds "PID locked". vmlab before the lock wrote only the
// pid and locked nothing: for such a file the directory is removed only when
// that pid does not run, so a live driver of an older vmlab keeps its own.
const ownerFile = ".vmlab-owner"

// lockedMark follows the pid in an owner file whose lock alone says whether
// its owner lives (a pid can be reused; a lock outlives nobody).
const lockedMark = "locked"

// tempPattern is what every vmlab temporary directory's name matches.
const tempPattern = "vmlab-*"

var (
	sweepOnce sync.Once

	ownersMu sync.Mutex
	owners   = map[string]*os.File{} // directory → its locked owner file
)

// MakeTempDir creates a private (0700) temporary directory named
// prefix+random in $TMPDIR, prefix starting with "vmlab-", that a later vmlab
// process removes if this one dies without calling RemoveTempDir or
// KeepTempDir. The first call in a process removes what dead owners left.
func MakeTempDir(prefix string) (string, error) {
	if !strings.HasPrefix(prefix, "vmlab-") {
		return "", fmt.Errorf("make temporary directory %s*: the prefix must start with vmlab-", prefix)
	}
	sweepTempDirsOnce()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := own(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("make temporary directory %s: %w", dir, err)
	}
	return dir, nil
}

// sweepTempDirsOnce sweeps $TMPDIR the first time it is called in a process.
func sweepTempDirsOnce() {
	sweepOnce.Do(func() { SweepTempDirs(os.TempDir()) })
}

// makeTempDir is MakeTempDir for this package's machines and floors.
func makeTempDir(prefix string) (string, error) { return MakeTempDir(prefix) }

// own writes dir's owner file and locks it. The file is locked under a
// temporary name and renamed into place, so that a sweeper never sees an
// owner file that is not locked yet.
func own(dir string) error {
	tmp := filepath.Join(dir, ownerFile+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", tmp, err)
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + " " + lockedMark); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		f.Close()
		return err
	}
	ownersMu.Lock()
	owners[dir] = f
	ownersMu.Unlock()
	return nil
}

// RemoveTempDir removes a directory MakeTempDir made, and gives up its lock.
func RemoveTempDir(dir string) error {
	err := os.RemoveAll(dir)
	release(dir)
	return err
}

// KeepTempDir makes dir the user's: no vmlab process removes it, not even
// after this one exits (a failed run's reports stay for the user to read).
func KeepTempDir(dir string) error {
	err := os.Remove(filepath.Join(dir, ownerFile))
	release(dir)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

func release(dir string) {
	ownersMu.Lock()
	f := owners[dir]
	delete(owners, dir)
	ownersMu.Unlock()
	if f != nil {
		f.Close()
	}
}

// SweepTempDirs removes the vmlab temporary directories in tmp whose owner
// has exited, and returns them.
func SweepTempDirs(tmp string) []string {
	files, _ := filepath.Glob(filepath.Join(tmp, tempPattern, ownerFile))
	var removed []string
	for _, f := range files {
		dir := filepath.Dir(f)
		if ownerGone(f) && os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// ownerGone says whether the owner file at path is unlocked and, for an
// older vmlab's file, names a pid that does not run. The lock taken to test
// it stays held while the directory is removed, then goes with the file.
func ownerGone(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // a live owner holds it
	}
	b := make([]byte, 64)
	n, _ := f.Read(b)
	fields := strings.Fields(string(b[:n]))
	if len(fields) == 0 {
		return false
	}
	pid, err := strconv.Atoi(fields[0])
	switch {
	case err != nil || pid <= 0 || pid == os.Getpid():
		return false
	case len(fields) > 1 && fields[1] == lockedMark:
		return true
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}
