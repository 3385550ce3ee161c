package coverage

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// scanRuns lists the runs of tests under dir/raw, with their states and
// which data each left. A test without a directory there had no machine
// boot.
func scanRuns(dir string, tests []string) ([]*Run, error) {
	raw := filepath.Join(dir, RawDir)
	if _, err := os.Stat(raw); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading coverage data in %s: no %s directory: is it the directory of a vmlab run -coverage?", dir, RawDir)
	}
	var runs []*Run
	for _, t := range tests {
		machines, err := os.ReadDir(filepath.Join(raw, t))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading coverage data of test %s: %w", t, err)
		}
		for _, m := range machines {
			if !m.IsDir() {
				continue
			}
			r, err := scanRun(MachineDir(dir, t, m.Name()), t, m.Name())
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("reading coverage data in %s: no machine of the tests %s booted", dir, strings.Join(tests, ", "))
	}
	slices.SortFunc(runs, func(a, b *Run) int {
		return cmp.Or(cmp.Compare(a.Test, b.Test), cmp.Compare(a.Machine, b.Machine))
	})
	return runs, nil
}

func scanRun(dir, test, machine string) (*Run, error) {
	r := &Run{Test: test, Machine: machine, dir: dir}
	data, err := ReadNoFollow(filepath.Join(dir, StateFile), maxStateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The run writes the state when the test ends: without it, the
		// run itself was cut short.
		r.Partial = true
		r.Reasons = append(r.Reasons, "no "+StateFile+": the run ended before the test did")
	case err != nil:
		return nil, fmt.Errorf("reading coverage state of %s in test %s: %w", machine, test, err)
	default:
		var st State
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("reading coverage state of %s in test %s: %s: %w", machine, test, filepath.Join(dir, StateFile), err)
		}
		r.Partial, r.Reasons, r.Excluded, r.Services = st.Partial, st.Reasons, st.Excluded, st.Services
	}
	if r.Excluded == "" {
		// A run cut short wrote no state, so nothing checked its share.
		why, err := CheckShare(dir, MaxShareBytes)
		if err != nil {
			return nil, fmt.Errorf("reading coverage data of %s in test %s: %w", machine, test, err)
		}
		r.Excluded = why
	}
	if r.Excluded != "" {
		return r, nil
	}
	metas, _ := filepath.Glob(filepath.Join(GuestData(dir, GoDir), "covmeta.*"))
	r.HasGo = len(metas) > 0
	gcdas, err := gcdaFiles(GuestData(dir, GcovDir))
	if err != nil {
		return nil, fmt.Errorf("reading C coverage data of %s in test %s: %w", machine, test, err)
	}
	r.HasGcov = len(gcdas) > 0
	return r, nil
}

// gcdaFiles lists the .gcda files under dir (none when dir is missing).
func gcdaFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(path, ".gcda") {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}
