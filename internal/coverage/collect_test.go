package coverage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepare: a new directory is made with raw/ in it, private; an
// existing one without the tests' data is fine; a file, an unwritable
// directory and a test's data from an earlier run are refused, naming the
// directory and what to do, and nothing in it is removed.
func TestPrepare(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	earlier := filepath.Join(base, "earlier")
	os.MkdirAll(filepath.Join(earlier, RawDir, "f.test", "m", GoDir), 0o700)
	readOnly := filepath.Join(base, "ro")
	os.MkdirAll(filepath.Join(readOnly, RawDir), 0o500)
	tests := []struct {
		name  string
		dir   string
		tests []string
		want  string // "": no error
	}{
		{"new", filepath.Join(base, "new", "cov"), []string{"f.test"}, ""},
		{"another test's data", earlier, []string{"f.test_other"}, ""},
		{"a file", file, nil, "create the coverage directory " + file + ": "},
		{"this test's data", earlier, []string{"f.test_other", "f.test"}, "coverage directory " + earlier + ": " +
			filepath.Join(earlier, RawDir, "f.test") + " holds an earlier run's data for test f.test: remove it, or name another directory"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests = append(tests, struct {
			name  string
			dir   string
			tests []string
			want  string
		}{"read-only", readOnly, nil, "write in the coverage directory " + readOnly + ": permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Prepare(tt.dir, tt.tests)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			case tt.want != "":
				return
			}
			fi, err := os.Stat(filepath.Join(tt.dir, RawDir))
			switch {
			case err != nil:
				t.Errorf("raw/ was not made: %v", err)
			case tt.name == "new" && fi.Mode().Perm() != 0o700:
				t.Errorf("raw/: got mode %v, want 0700", fi.Mode().Perm())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(earlier, RawDir, "f.test", "m", GoDir)); err != nil {
		t.Errorf("the earlier run's data is gone: %v", err)
	}
}
