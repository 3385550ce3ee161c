package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// setupBench is the setup section of `vmlab bench`: what declared files
// cost a boot. Applied one shell command per file, 1000 files added ~176 s
// under TCG; in one request, the target is under 1 s.
type setupBench struct {
	// Setup1000FilesS is the boot with 1000 declared files (100 bytes each,
	// in 10 directories) minus a plain boot, medians of alternating boots.
	Setup1000FilesS float64 `json:"setup_1000_files_s"`
	// SetupFilesBootS and SetupPlainBootS are the two medians: below the
	// boots' spread the difference can read negative.
	SetupFilesBootS float64 `json:"setup_files_boot_s"`
	SetupPlainBootS float64 `json:"setup_plain_boot_s"`
}

// benchFiles are n files for a machine's setup, as a test might declare.
func benchFiles(n int) []machine.File {
	files := make([]machine.File, n)
	for i := range files {
		files[i] = machine.File{
			Path:    fmt.Sprintf("/etc/vmlab-bench/d%d/f%04d.conf", i%10, i),
			Content: strings.Repeat("x", 99) + "\n",
		}
	}
	return files
}

// benchSetup boots runs times without and with 1000 files, alternating so
// that a change in the host's load hits both alike, and records the
// difference of the medians.
func (s *setupBench) benchSetup(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags, runs int) error {
	var plain, withFiles []time.Duration
	for i := range runs {
		fmt.Fprintf(e.stderr, "vmlab: bench: boot with 1000 files, %d of %d\n", i+1, runs)
		for _, files := range [][]machine.File{nil, benchFiles(1000)} {
			d, err := timeBoot(ctx, boot, bf, machine.Setup{Files: files})
			if err != nil {
				return fmt.Errorf("boot with %d files: %w", len(files), err)
			}
			if files == nil {
				plain = append(plain, d)
			} else {
				withFiles = append(withFiles, d)
			}
		}
	}
	s.SetupFilesBootS, s.SetupPlainBootS = median(withFiles).Seconds(), median(plain).Seconds()
	s.Setup1000FilesS = s.SetupFilesBootS - s.SetupPlainBootS
	return nil
}

// timeBoot returns the time from Start to the first Succeed("true").
func timeBoot(ctx context.Context, boot *machine.Boot, bf bootFlags, setup machine.Setup) (time.Duration, error) {
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus, Setup: setup}, Boot: boot})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	start := time.Now()
	if _, err := m.Succeed(ctx, "true"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// print shows the difference with the two medians it is made of: a
// difference below zero says the files cost less than the boots vary,
// not that they saved time.
func (s *setupBench) print(tw io.Writer) {
	value := fmt.Sprintf("%.2f s", s.Setup1000FilesS)
	if s.Setup1000FilesS < 0 {
		value = "under the boots' spread"
	}
	fmt.Fprintf(tw, "setup: 1000 declared files, added to a boot (%.2f s with, %.2f s without)\t%s\t< 1 s\t%s\n",
		s.SetupFilesBootS, s.SetupPlainBootS, value, verdict(s.Setup1000FilesS < 1))
}
