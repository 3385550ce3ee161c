package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/compresstest"
)

// fakeKO returns bytes that pass for a plain module.
func fakeKO(name string) []byte { return []byte("\x7fELF\x02\x01\x01 module " + name) }

// compressedTree is a module tree whose modules for "virtio_pci" come in
// every compression a distro uses.
func compressedTree(t *testing.T) string {
	return writeTree(t, map[string][]byte{
		"kernel/drivers/virtio/virtio_ring.ko":           fakeKO("virtio_ring"),
		"kernel/drivers/virtio/virtio.ko":                fakeKO("virtio"),
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": fakeKO("virtio_pci_modern_dev"),
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko": fakeKO("virtio_pci_legacy_dev"),
		"kernel/drivers/virtio/virtio_pci.ko":            fakeKO("virtio_pci"),
		"kernel/drivers/char/hw_random/virtio-rng.ko.xz": compresstest.XZ(t, fakeKO("virtio_rng")),
		"kernel/fs/overlayfs/overlay.ko":                 fakeKO("overlay"),
		"kernel/net/9p/9pnet.ko":                         compresstest.Zstd(t, fakeKO("9pnet")),
		"kernel/net/9p/9pnet_virtio.ko":                  compresstest.Gzip(t, fakeKO("9pnet_virtio")),
		"kernel/drivers/corrupt.ko.zst":                  append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "garbage"...),
	})
}

// writeInit writes an init binary and returns its path.
func writeInit(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func readBuilt(t *testing.T, path string) map[string]entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return byName(readArchive(t, data))
}

func TestBuildLayout(t *testing.T) {
	init := floorInit()
	spec := Spec{
		Init:       writeInit(t, init),
		ModulesDir: compressedTree(t),
		Modules:    []string{"virtio-rng", "9pnet_virtio", "overlay", "virtio_blk"},
	}
	path, err := Build(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := readBuilt(t, path)
	for _, dir := range []string{"dev", "proc", "sys", "run", "tmp", "newroot", "modules"} {
		if e, ok := files[dir]; !ok || e.mode&0o170000 != modeDir {
			t.Errorf("got %s with mode %#o, want a directory", dir, e.mode)
		}
	}
	if e := files["init"]; e.mode != modeRegular|0o755 || !bytes.Equal(e.data, init) {
		t.Errorf("got /init with mode %#o and %d bytes, want mode %#o and the %d-byte init", e.mode, len(e.data), modeRegular|0o755, len(init))
	}
	if e := files["dev/console"]; e.mode != modeCharDev|0o600 || e.major != 5 || e.minor != 1 {
		t.Errorf("got /dev/console mode %#o dev %d:%d, want char device 5:1", e.mode, e.major, e.minor)
	}
	wantOrder := "virtio_ring.ko\nvirtio.ko\nvirtio-rng.ko\n9pnet.ko\n9pnet_virtio.ko\noverlay.ko\n"
	if got := string(files["modules/order"].data); got != wantOrder {
		t.Errorf("got modules/order %q, want %q", got, wantOrder)
	}
	for _, name := range strings.Fields(wantOrder) {
		want := fakeKO(moduleName(name))
		if got := files["modules/"+name].data; !bytes.Equal(got, want) {
			t.Errorf("got modules/%s = %q, want the decompressed %q", name, got, want)
		}
	}
}

// TestBuildForkServer: the builtin goes in as /forksrv.so, and only when
// given (an archive without one makes the agent exec every shell).
func TestBuildForkServer(t *testing.T) {
	so := filepath.Join(t.TempDir(), "forksrv.so")
	if err := os.WriteFile(so, []byte("a builtin"), 0o644); err != nil {
		t.Fatal(err)
	}
	init := writeInit(t, floorInit())
	path, err := Build(Spec{Init: init, ForkServer: so}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := readBuilt(t, path)["forksrv.so"]; !ok || e.mode != modeRegular|0o644 || string(e.data) != "a builtin" {
		t.Errorf("got /forksrv.so present=%v mode %#o %q, want the builtin, mode 0644", ok, e.mode, e.data)
	}
	path, err = Build(Spec{Init: init}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readBuilt(t, path)["forksrv.so"]; ok {
		t.Error("an archive built without a fork server has /forksrv.so")
	}
	if _, err := Build(Spec{Init: init, ForkServer: so + ".missing"}, t.TempDir()); err == nil {
		t.Error("a missing fork server builtin built an archive")
	}
}

func TestBuildWithoutModules(t *testing.T) {
	path, err := Build(Spec{Init: writeInit(t, floorInit())}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := readBuilt(t, path)
	if e, ok := files["modules/order"]; !ok || len(e.data) != 0 {
		t.Errorf("got modules/order present=%v with %q, want present and empty", ok, e.data)
	}
}

func TestBuildCache(t *testing.T) {
	cache := t.TempDir()
	tree := compressedTree(t)
	spec := Spec{Init: writeInit(t, floorInit()), ModulesDir: tree, Modules: []string{"9pnet_virtio"}}
	first, err := Build(spec, cache)
	if err != nil {
		t.Fatal(err)
	}
	// Mark the cached archive: a cache hit must return it untouched.
	if err := os.WriteFile(first, []byte("marker"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, err := Build(spec, cache); err != nil || again != first {
		t.Fatalf("got %q, %v on the second build, want %q, nil", again, err, first)
	}
	if got, _ := os.ReadFile(first); string(got) != "marker" {
		t.Errorf("got cached archive %q, want %q: the cache hit rewrote it", got, "marker")
	}

	changes := []struct {
		name   string
		change func() Spec
	}{
		{"another init", func() Spec {
			s := spec
			s.Init = writeInit(t, append(floorInit(), 0))
			return s
		}},
		{"another module list", func() Spec {
			s := spec
			s.Modules = []string{"9pnet_virtio", "overlay"}
			return s
		}},
		{"a fork server", func() Spec {
			s := spec
			s.ForkServer = filepath.Join(t.TempDir(), "forksrv.so")
			if err := os.WriteFile(s.ForkServer, []byte("builtin v1"), 0o644); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"the fork server's content", func() Spec {
			s := spec
			s.ForkServer = filepath.Join(t.TempDir(), "forksrv.so")
			if err := os.WriteFile(s.ForkServer, []byte("builtin v2"), 0o644); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"a module's content", func() Spec {
			path := filepath.Join(tree, "kernel/net/9p/9pnet.ko")
			if err := os.WriteFile(path, fakeKO("9pnet v2"), 0o644); err != nil {
				t.Fatal(err)
			}
			return spec
		}},
	}
	seen := map[string]string{first: "the original"}
	for _, c := range changes {
		path, err := Build(c.change(), cache)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if prev, ok := seen[path]; ok {
			t.Errorf("after changing %s got the same archive as %s: %s", c.name, prev, path)
		}
		seen[path] = c.name
	}
	if entries, _ := os.ReadDir(cache); len(entries) != len(seen) {
		t.Errorf("got %d files in the cache, want %d (no temporary files left)", len(entries), len(seen))
	}
}

// dynamicELF returns an executable with a PT_INTERP segment, as a dynamically
// linked program has.
func dynamicELF() []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, elf.Header64{
		Ident:   [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:    uint16(elf.ET_DYN),
		Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
	})
	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: 120, Filesz: uint64(len(interp)), Memsz: uint64(len(interp)), Align: 1})
	b.WriteString(interp)
	return b.Bytes()
}

func TestBuildErrors(t *testing.T) {
	tree := compressedTree(t)
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"no init", Spec{}, []string{"no init binary"}},
		{"missing init", Spec{Init: "/nonexistent/init"}, []string{"/nonexistent/init", "no such file"}},
		{"init is a script", Spec{Init: writeInit(t, []byte("#!/bin/sh\n"))}, []string{"not an ELF executable"}},
		{"dynamic init", Spec{Init: writeInit(t, dynamicELF())}, []string{"dynamically linked", "CGO_ENABLED=0"}},
		{"modules without tree", Spec{Init: writeInit(t, floorInit()), Modules: []string{"overlay"}},
			[]string{"overlay", "no module tree"}},
		{"unknown module", Spec{Init: writeInit(t, floorInit()), ModulesDir: tree, Modules: []string{"nope"}},
			[]string{`"nope"`, tree}},
		{"module file missing", Spec{Init: writeInit(t, floorInit()), ModulesDir: tree, Modules: []string{"9p"}},
			[]string{"read module", "no such file"}},
		{"corrupt compressed module", Spec{Init: writeInit(t, floorInit()), ModulesDir: tree, Modules: []string{"corrupt"}},
			[]string{"decompress module corrupt", "corrupt.ko.zst"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.spec, t.TempDir())
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildLazy(t *testing.T) {
	spec := Spec{
		Init:       writeInit(t, floorInit()),
		ModulesDir: compressedTree(t),
		Modules:    []string{"virtio_pci"},
		Lazy:       []string{"virtio-rng", "overlay"},
	}
	path, err := Build(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := readBuilt(t, path)
	wantOrder := "virtio_ring.ko\nvirtio.ko\nvirtio_pci_modern_dev.ko\nvirtio_pci_legacy_dev.ko\nvirtio_pci.ko\n"
	wantLazy := "virtio-rng.ko\noverlay.ko\n" // virtio and virtio_ring come at boot already
	if got := string(files["modules/order"].data); got != wantOrder {
		t.Errorf("got modules/order %q, want %q", got, wantOrder)
	}
	if got := string(files["modules/lazy"].data); got != wantLazy {
		t.Errorf("got modules/lazy %q, want %q", got, wantLazy)
	}
	if _, ok := files["modules/overlay.ko"]; !ok {
		t.Error("the lazy module is not in the archive")
	}
}

func TestBuildDisplay(t *testing.T) {
	spec := Spec{
		Init:       writeInit(t, floorInit()),
		ModulesDir: compressedTree(t),
		Modules:    []string{"virtio_pci"},
		Lazy:       []string{"overlay"},
		Display:    []string{"virtio-rng", "overlay"},
	}
	path, err := Build(spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := readBuilt(t, path)
	wantOrder := "virtio_ring.ko\nvirtio.ko\nvirtio_pci_modern_dev.ko\nvirtio_pci_legacy_dev.ko\nvirtio_pci.ko\n"
	for name, want := range map[string]string{
		"modules/order":   wantOrder,
		"modules/lazy":    "overlay.ko\n",
		"modules/display": "overlay.ko\nvirtio-rng.ko\n", // overlay is in both lists, once in the archive
	} {
		if got := string(files[name].data); got != want {
			t.Errorf("got %s %q, want %q", name, got, want)
		}
	}
}
