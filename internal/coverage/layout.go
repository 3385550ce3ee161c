// Package coverage owns a run's combined coverage: where each machine's raw
// data lands on the host (this file, shared by the run that collects it and
// the merge that reads it), and the merged report built from it.
//
// A run with -coverage DIR writes, for every test and every machine of it:
//
//	DIR/raw/TEST/MACHINE/go/      GOCOVERDIR of every command and service
//	DIR/raw/TEST/MACHINE/gcov/    GCOV_PREFIX of every command and service
//	                              (GCOV_PREFIX_STRIP=0: a .gcda file sits under
//	                              its object file's absolute build path)
//	DIR/raw/TEST/MACHINE/state.json  a State, written when the test ends
//
// TEST and MACHINE are the names the run's output directory uses for them
// (internal/script's outpath rules), so they are safe path elements.
package coverage

import "path/filepath"

// Subdirectories of a machine's raw directory.
const (
	RawDir    = "raw"        // under the coverage directory
	GoDir     = "go"         // GOCOVERDIR
	GcovDir   = "gcov"       // GCOV_PREFIX
	StateFile = "state.json" // the State
)

// State is what the run says about one machine's data in one test.
type State struct {
	Test    string `json:"test"`
	Machine string `json:"machine"`
	// Partial says the data may miss counts: the machine crashed or was
	// lost, was powered off without a clean shutdown, or a process it ran
	// was killed before it could write its counters. Reasons says which.
	Partial bool     `json:"partial,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// MachineDir is the raw directory of machine in test under the coverage
// directory dir.
func MachineDir(dir, test, machine string) string {
	return filepath.Join(dir, RawDir, test, machine)
}
