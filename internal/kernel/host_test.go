package kernel

import (
	"debug/elf"
	"os"
	"testing"
	"time"
)

// TestHostKernel prepares the running host's own kernel, the path every boot
// takes, and reports how long extraction and a cache hit take.
func TestHostKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("extracting the host kernel takes seconds; skipped in -short mode")
	}
	image, err := Find("")
	if err != nil {
		t.Skipf("no host kernel to test with: %v", err)
	}
	if f, err := os.Open(image); err != nil {
		t.Skipf("host kernel not readable by this user: %v", err)
	} else {
		f.Close()
	}
	cache := t.TempDir()

	start := time.Now()
	k, err := Prepare(image, "", cache)
	if err != nil {
		t.Fatalf("Prepare(%s): %v", image, err)
	}
	extract := time.Since(start)

	start = time.Now()
	again, err := Prepare(image, "", cache)
	if err != nil {
		t.Fatalf("Prepare(%s) again: %v", image, err)
	}
	hit := time.Since(start)
	if again.Vmlinux != k.Vmlinux {
		t.Errorf("got %s on the cache hit, want %s", again.Vmlinux, k.Vmlinux)
	}

	f, err := elf.Open(k.Vmlinux)
	if err != nil {
		t.Fatalf("open extracted vmlinux: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("got ELF %v %v, want EM_X86_64 ET_EXEC", f.Machine, f.Type)
	}
	data, err := os.ReadFile(k.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkVmlinux(data); err != nil {
		t.Errorf("check extracted vmlinux: %v", err)
	}
	t.Logf("%s (release %s): extracted %d MB in %v, cache hit in %v",
		image, k.Version, len(data)>>20, extract.Round(time.Millisecond), hit.Round(time.Millisecond))
}
