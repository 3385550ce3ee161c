package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputPathsCheckedFirst: an output path the run could not write is
// bad input (exit 2), said before anything boots. The boot cannot be
// prepared here (-qemu names no QEMU, exit 3), so an exit 2 proves the
// check came first. Before: -junit into a missing directory was found
// only when the reports were written, after every test ran.
func TestOutputPathsCheckedFirst(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	noQEMU := filepath.Join(tmp, "no-qemu")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"junit in a missing directory", []string{"-junit", filepath.Join(tmp, "missing", "j.xml")},
			exitUsage, "-junit " + filepath.Join(tmp, "missing", "j.xml") + ": directory " + filepath.Join(tmp, "missing") + " does not exist"},
		{"junit is a directory", []string{"-junit", tmp}, exitUsage, "is a directory, want a file"},
		{"junit under a file", []string{"-junit", filepath.Join(file, "j.xml")}, exitUsage, "is not a directory"},
		{"out is a file", []string{"-out", file}, exitUsage, "create the output directory (-out)"},
		// A -junit file in the -out directory vmlab creates is fine: the
		// run goes on to prepare the boot, which fails.
		{"junit in a new out", []string{"-out", filepath.Join(tmp, "new"), "-junit", filepath.Join(tmp, "new", "j.xml")},
			exitInternal, "no-qemu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"run", "-qemu", noQEMU}, tt.args...), "testdata/pass.star")
			code, _, stderr := run(args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}
