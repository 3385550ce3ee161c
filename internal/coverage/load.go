package coverage

import (
	"context"
	"fmt"
)

// Load reads the raw data a run left in dir into the model that Merge
// reports from, and writes nothing: for tests and tools that ask which
// machine ran which line, which lcov.info and cobertura.xml (all machines
// merged) do not say. Runs without data are left out, as Merge leaves
// them out; no data at all is an error. logf is Merge's.
func Load(ctx context.Context, dir string, logf func(string, ...any)) (*Model, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	runs, err := scanRuns(dir)
	if err != nil {
		return nil, err
	}
	var withData []*Run
	for _, r := range runs {
		if r.HasData() {
			withData = append(withData, r)
		}
	}
	if len(withData) == 0 {
		return nil, fmt.Errorf("loading coverage in %s: no coverage data from any machine: were the binaries built with -cover / --coverage?", dir)
	}
	m, _, err := read(ctx, withData, logf)
	if err != nil {
		return nil, fmt.Errorf("loading coverage in %s: %w", dir, err)
	}
	return m, nil
}
