package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInstalledProvides: a name an installed package provides counts as
// installed (postgresql-client, provided by postgresql-client-15, was
// refused while psql was there); one only a removed package provides, or
// one merely mentioned elsewhere, does not.
func TestInstalledProvides(t *testing.T) {
	dir := t.TempDir()
	status := `Package: postgresql-client-15
Status: install ok installed
Provides: postgresql-client, libpq-tools (= 15.1)
Description: front-end programs
 Provides: not-a-field

Package: gone
Status: deinstall ok config-files
Provides: gone-virtual

Package: other
Status: install ok installed
Depends: wanted-only
`
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	oldInfo, oldStatus := dpkgInfo, dpkgStatus
	dpkgInfo, dpkgStatus = dir, filepath.Join(dir, "status")
	defer func() { dpkgInfo, dpkgStatus = oldInfo, oldStatus }()
	tests := []struct {
		pkg  string
		want bool
	}{
		{"postgresql-client", true},
		{"libpq-tools", true},
		{"gone-virtual", false},
		{"wanted-only", false},
		{"not-a-field", false},
		{"postgresql", false},
	}
	for _, tt := range tests {
		if got := Installed(tt.pkg); got != tt.want {
			t.Errorf("Installed(%q): got %v, want %v", tt.pkg, got, tt.want)
		}
	}
}
