package machine

import "testing"

// SetOutputLimits lowers OutputLimit and SpillSize for the test t, so
// tests of long outputs print kilobytes, not megabytes.
func SetOutputLimits(t testing.TB, limit, spill int) {
	oldLimit, oldSpill := outputLimit, spillSize
	outputLimit, spillSize = limit, spill
	t.Cleanup(func() { outputLimit, spillSize = oldLimit, oldSpill })
}
