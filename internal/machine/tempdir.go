package machine

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// ownerFile, in each temporary directory vmlab makes, holds the pid of the
// process that made it. A driver killed with SIGKILL cannot remove its
// directories; the next one that runs removes those whose owner is gone.
const ownerFile = ".vmlab-owner"

var sweepOnce sync.Once

// makeTempDir creates a private (0700) temporary directory for this process.
func makeTempDir(prefix string) (string, error) {
	sweepOnce.Do(sweepStale)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepStale removes vmlab temporary directories whose owner has exited.
func sweepStale() {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "vmlab-*", ownerFile))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			os.RemoveAll(filepath.Dir(f))
		}
	}
}
