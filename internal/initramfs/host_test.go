package initramfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/kernel"
)

// hostModules is the module list the guest agent needs on Debian-like
// kernels, where all of these are modules.
var hostModules = []string{"virtio_pci", "virtio_console", "9p", "9pnet_virtio", "overlay", "virtiofs", "virtio_blk", "crc32c_generic", "ext4", "virtio_net"}

// TestBuildHostModules resolves and packs the agent's modules from the host's
// module tree, and reports what a cache miss, a cache hit and the content
// hashing inside every call cost.
func TestBuildHostModules(t *testing.T) {
	image, err := kernel.Find("")
	if err != nil {
		t.Skipf("no host kernel with modules: %v", err)
	}
	release, ok := strings.CutPrefix(filepath.Base(image), "vmlinuz-")
	if !ok {
		t.Skipf("host kernel %s is not named vmlinuz-<release>", image)
	}
	dir := filepath.Join("/lib/modules", release)
	mods, err := Closure(dir, hostModules)
	if err != nil {
		t.Fatalf("Closure: %v", err)
	}
	for i, m := range mods {
		if _, err := os.Stat(m.Path); err != nil {
			t.Errorf("module %d (%s): %v", i, m.Name, err)
		}
	}

	// A 16 MiB init stands in for the vmlab binary, so that hashing costs
	// what it will in use.
	init := writeInit(t, append(floorInit(), make([]byte, 16<<20)...))
	spec := Spec{Init: init, ModulesDir: dir, Modules: hostModules}
	cache := t.TempDir()
	start := time.Now()
	path, err := Build(spec, cache)
	if err != nil {
		t.Fatal(err)
	}
	miss := time.Since(start)
	start = time.Now()
	if again, err := Build(spec, cache); err != nil || again != path {
		t.Fatalf("got %q, %v on the second build, want %q, nil", again, err, path)
	}
	hit := time.Since(start)
	in, err := spec.load()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	in.key()
	hash := time.Since(start)

	files := readBuilt(t, path)
	if got, want := len(files["modules/order"].data) > 0, len(mods) > 0; got != want {
		t.Errorf("got a modules/order of %d bytes for %d modules", len(files["modules/order"].data), len(mods))
	}
	fi, _ := os.Stat(path)
	t.Logf("%d modules from %s: %v", len(mods), dir, moduleNames(mods))
	t.Logf("archive %d KiB: build %v, cache hit %v, of which hashing %v", fi.Size()>>10,
		miss.Round(time.Millisecond), hit.Round(time.Millisecond), hash.Round(time.Millisecond))
}

func moduleNames(mods []Module) []string {
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	return names
}
