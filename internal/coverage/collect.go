package coverage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Prepare makes dir ready for a run that collects the coverage of tests
// (their names as in MachineDir), before anything boots: dir and dir/raw
// are created when missing (0700: the data is the user's), dir must be a
// directory the user can write, and no test may have raw data there
// already, from an earlier run: gcov would add its counts to the .gcda
// files it finds, and nothing is deleted without the user asking. The
// error names the directory and what to do.
func Prepare(dir string, tests []string) error {
	raw := filepath.Join(dir, RawDir)
	if err := os.MkdirAll(raw, 0o700); err != nil {
		return fmt.Errorf("create the coverage directory %s: %w", dir, err)
	}
	if err := unix.Access(raw, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("write in the coverage directory %s: %w", dir, err)
	}
	for _, t := range tests {
		p := filepath.Join(raw, t)
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return fmt.Errorf("coverage directory %s: %s holds an earlier run's data for test %s: remove it, or name another directory", dir, p, t)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("read the coverage directory %s: %w", dir, err)
		}
	}
	return nil
}
