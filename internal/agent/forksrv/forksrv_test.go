package forksrv

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuild compiles the builtin: a shared object exporting forksrv_struct,
// bound at load (-z now), found in the cache the second time.
func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler on this host")
	}
	cache := t.TempDir()
	path, err := Build(cache)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		t.Errorf("%s is %v, want a shared object", path, f.Type)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
		}
	}
	for _, name := range []string{"forksrv_struct", "forksrv_builtin_load"} {
		if !exported[name] {
			t.Errorf("%s does not export %s", path, name)
		}
	}
	flags, err := f.DynValue(elf.DT_FLAGS)
	if err != nil || len(flags) == 0 || elf.DynFlag(flags[0])&elf.DF_BIND_NOW == 0 {
		t.Errorf("%s is not bound at load (DT_FLAGS %v, %v)", path, flags, err)
	}
	// A cache hit returns the entry untouched.
	if err := os.WriteFile(path, []byte("marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := Build(cache); err != nil || again != path {
		t.Fatalf("second build: %q, %v; want %q", again, err, path)
	}
	if b, _ := os.ReadFile(path); string(b) != "marker" {
		t.Error("the second build compiled again")
	}
}

// TestBuildNoCC: without cc the error says what to install.
func TestBuildNoCC(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Build(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "install gcc") {
		t.Errorf("got %v, want an error naming gcc", err)
	}
}

// TestBuildCachedWithoutCC: a library in the cache is used on a host whose
// C compiler has gone since.
func TestBuildCachedWithoutCC(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler on this host")
	}
	cache := t.TempDir()
	path, err := Build(cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	if again, err := Build(cache); err != nil || again != path {
		t.Errorf("without cc: %q, %v; want the cached %q", again, err, path)
	}
	if _, err := Build(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no C compiler (cc)") {
		t.Errorf("without cc and nothing cached: %v", err)
	}
}

// TestBuildOutsideCache: the compiler writes in a temporary directory, not
// in the cache, where a vmlab killed in the middle would leave it for good.
func TestBuildOutsideCache(t *testing.T) {
	bin, tmp, cache := t.TempDir(), t.TempDir(), t.TempDir()
	record := filepath.Join(t.TempDir(), "out")
	// A cc that records where it was asked to write, then fails.
	script := "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && dirname \"$2\" >" + record + "; shift; done\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "cc"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	t.Setenv("TMPDIR", tmp)
	if _, err := Build(cache); err == nil {
		t.Fatal("a failing cc built the library")
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSpace(string(b))
	if filepath.Dir(dir) != tmp {
		t.Errorf("cc wrote in %s, want a directory of %s", dir, tmp)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s is left behind", dir)
	}
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if strings.Contains(e.Name(), "build") {
			t.Errorf("left in the cache: %s", e.Name())
		}
	}
}
