// Package coverage owns a run's combined coverage: where each machine's raw
// data lands on the host (this file, shared by the run that collects it and
// the merge that reads it), and the merged report built from it.
//
// A run with -coverage DIR writes, for every test and every machine of it:
//
//	DIR/raw/TEST/MACHINE/guest/       the share the guest writes in, and
//	                                  the only part of MACHINE it sees
//	DIR/raw/TEST/MACHINE/guest/go/    GOCOVERDIR of every command and service
//	DIR/raw/TEST/MACHINE/guest/gcov/  GCOV_PREFIX of every command and service
//	                                  (GCOV_PREFIX_STRIP=0: a .gcda file sits
//	                                  under its object file's absolute build path)
//	DIR/raw/TEST/MACHINE/state.json   a State, written by the host when the
//	                                  test ends
//
// TEST and MACHINE are the names the run's output directory uses for them
// (internal/script's outpath rules), so they are safe path elements.
//
// Everything under guest/ is the guest's to write: a guest's root can put
// anything there (symbolic links, devices, huge files, names that look
// like command-line flags). The host never writes through it, reads from
// it only regular files, without following links and with a size cap
// (readGuestFile, CheckShare), and checks every name it takes from it
// before a tool sees one (checkGoName).
package coverage

import "path/filepath"

// Subdirectories of a machine's raw directory.
const (
	RawDir    = "raw"        // under the coverage directory
	GuestDir  = "guest"      // the share, under a machine's raw directory
	GoDir     = "go"         // GOCOVERDIR, under GuestDir
	GcovDir   = "gcov"       // GCOV_PREFIX, under GuestDir
	StateFile = "state.json" // the State, beside GuestDir
)

// MaxShareBytes is how much data one machine may leave in its share in
// one test. It cannot be enforced while the guest writes (the share has
// no quota): CheckShare measures it when the test ends, and a machine
// over it has its data marked excluded, not merged.
const MaxShareBytes = 1 << 30

// State is what the run says about one machine's data in one test.
type State struct {
	Test    string `json:"test"`
	Machine string `json:"machine"`
	// Partial says the data may miss counts: the machine crashed or was
	// lost, was powered off without a clean shutdown, or a process it ran
	// was killed before it could write its counters. Reasons says which.
	Partial bool     `json:"partial,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	// Excluded says why the machine's data is not merged at all (what
	// its share held is not coverage data vmlab reads: too much of it,
	// links, devices); empty: it is merged.
	Excluded string `json:"excluded,omitempty"`
	// Services are the machine's services (the test's services, which
	// the test's end stops with SIGTERM): when the machine left no data,
	// they are why, more likely than a build without instrumentation.
	Services []string `json:"services,omitempty"`
}

// MachineDir is the raw directory of machine in test under the coverage
// directory dir.
func MachineDir(dir, test, machine string) string {
	return filepath.Join(dir, RawDir, test, machine)
}

// GuestData is the directory sub (GoDir, GcovDir) of the share in the
// machine's raw directory machineDir.
func GuestData(machineDir, sub string) string {
	return filepath.Join(machineDir, GuestDir, sub)
}
