package machine

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCheckSnapshot checks that a snapshot whose files are not the ones
// saved is refused (the machine then boots cold): a missing one, another
// shape's, a truncated or changed state file, a truncated memory file.
func TestCheckSnapshot(t *testing.T) {
	mk := func(t *testing.T) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, snapState), []byte("device state"), 0o600)
		os.WriteFile(filepath.Join(dir, snapRAM), make([]byte, 4096), 0o600)
		sum, n, _ := sumFile(filepath.Join(dir, snapState))
		h := `{"key":"k1","state_bytes":` + itoa(n) + `,"state_sha256":"` + sum + `","ram_bytes":4096}`
		os.WriteFile(filepath.Join(dir, snapHeader), []byte(h), 0o600)
		return dir
	}
	if _, err := checkSnapshot(mk(t), "k1"); err != nil {
		t.Fatalf("a whole snapshot: %v", err)
	}
	if _, err := checkSnapshot(t.TempDir(), "k1"); !errors.Is(err, errNoSnapshot) {
		t.Errorf("no snapshot: got %v, want errNoSnapshot", err)
	}
	for _, tt := range []struct {
		name, want string
		spoil      func(dir string)
		key        string
	}{
		{"another shape", "shape", func(string) {}, "k2"},
		{"truncated state", "state file", func(d string) { os.Truncate(filepath.Join(d, snapState), 3) }, "k1"},
		{"changed state", "state file", func(d string) { os.WriteFile(filepath.Join(d, snapState), []byte("device stale"), 0o600) }, "k1"},
		{"truncated memory", "memory file", func(d string) { os.Truncate(filepath.Join(d, snapRAM), 100) }, "k1"},
		{"bad header", "header", func(d string) { os.WriteFile(filepath.Join(d, snapHeader), []byte("{"), 0o600) }, "k1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := mk(t)
			tt.spoil(dir)
			_, err := checkSnapshot(dir, tt.key)
			if err == nil || errors.Is(err, errNoSnapshot) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about the %s", err, tt.want)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestReadSnapshot checks the option's values and its error.
func TestReadSnapshot(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if on, err := readSnapshot("", env("on")); !on || err != nil {
		t.Errorf("VMLAB_SNAPSHOT=on: got %v, %v", on, err)
	}
	if on, err := readSnapshot("off", env("on")); on || err != nil {
		t.Errorf("off over VMLAB_SNAPSHOT=on: got %v, %v", on, err)
	}
	if on, err := readSnapshot("", env("")); on || err != nil {
		t.Errorf("default: got %v, %v; want off", on, err)
	}
	if _, err := readSnapshot("yes", env("")); err == nil || !strings.Contains(err.Error(), "want on or off") {
		t.Errorf("yes: got %v, want an error naming on and off", err)
	}
}
