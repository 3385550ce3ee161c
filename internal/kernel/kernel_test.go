package kernel

import (
	"bytes"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeHost lays out boot/ and lib/modules/ under a temporary directory, with
// a module tree for each of releases, and returns a Host pointing there.
func fakeHost(t *testing.T, releases ...string) Host {
	t.Helper()
	dir := t.TempDir()
	h := Host{Boot: filepath.Join(dir, "boot"), Modules: filepath.Join(dir, "lib", "modules")}
	mustMkdir(t, h.Boot)
	for _, rel := range releases {
		mustMkdir(t, filepath.Join(h.Modules, rel))
		mustWrite(t, filepath.Join(h.Modules, rel, "modules.dep"), nil)
	}
	return h
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPrepare(t *testing.T) {
	vmlinux := pvhVmlinux()
	xzVmlinux := xzPayload(t, vmlinux)
	tests := []struct {
		name        string
		image       []byte
		moduleTrees []string // releases with a module tree
		modulesArg  string   // Prepare's modulesDir, relative to Host.Modules
		wantErr     []string // substrings of the error; none means success
		wantIs      error
	}{
		{name: "gzip", image: fakeBzImage(testRelease, gzipPayload(t, vmlinux)), moduleTrees: []string{testRelease}},
		{name: "xz", image: fakeBzImage(testRelease, xzVmlinux), moduleTrees: []string{testRelease}},
		{name: "zstd", image: fakeBzImage(testRelease, zstdPayload(t, vmlinux)), moduleTrees: []string{testRelease}},
		{name: "explicit module tree", image: fakeBzImage(testRelease, zstdPayload(t, vmlinux)),
			moduleTrees: []string{testRelease}, modulesArg: testRelease},
		{name: "vmlinux used as is", image: vmlinux, moduleTrees: []string{testRelease}},
		{name: "no PVH note",
			image:       fakeBzImage(testRelease, xzPayload(t, fakeVmlinux(elf.EM_X86_64, "Xen", 17))),
			moduleTrees: []string{testRelease},
			wantErr:     []string{"CONFIG_PVH"}, wantIs: ErrNoPVH},
		{name: "PVH note of another owner",
			image:       fakeVmlinux(elf.EM_X86_64, "Linux", xenElfnotePhys32Entry),
			moduleTrees: []string{testRelease},
			wantErr:     []string{"CONFIG_PVH"}, wantIs: ErrNoPVH},
		{name: "not x86-64",
			image:       fakeBzImage(testRelease, gzipPayload(t, fakeVmlinux(elf.EM_AARCH64, "Xen", 18))),
			moduleTrees: []string{testRelease},
			wantErr:     []string{"EM_AARCH64", "want ELFCLASS64 EM_X86_64"}},
		{name: "lz4 payload",
			image:       fakeBzImage(testRelease, withSize([]byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4}, 100)),
			moduleTrees: []string{testRelease},
			wantErr:     []string{"lz4", "uncompressed vmlinux"}},
		{name: "size trailer mismatch",
			image:       fakeBzImage(testRelease, withSize(xzVmlinux[:len(xzVmlinux)-4], 12345)),
			moduleTrees: []string{testRelease},
			wantErr:     []string{"trailer says 12345"}},
		{name: "not a kernel", image: []byte("#!/bin/sh\necho hello\n"), moduleTrees: []string{testRelease},
			wantErr: []string{"neither a bzImage"}},
		{name: "no module tree", image: fakeBzImage(testRelease, gzipPayload(t, vmlinux)),
			wantErr: []string{"no directory", filepath.Join("modules", testRelease), "linux-image-" + testRelease}},
		{name: "module tree of another release", image: fakeBzImage(testRelease, gzipPayload(t, vmlinux)),
			moduleTrees: []string{testRelease, "6.8.0-other"}, modulesArg: "6.8.0-other",
			wantErr: []string{"6.8.0-other", testRelease, filepath.Join("modules", "6.8.0-other"), "vmlinuz-" + testRelease}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, tt.moduleTrees...)
			image := filepath.Join(h.Boot, "vmlinuz-"+testRelease)
			mustWrite(t, image, tt.image)
			modulesArg := tt.modulesArg
			if modulesArg != "" {
				modulesArg = filepath.Join(h.Modules, modulesArg)
			}
			k, err := h.Prepare(image, modulesArg, filepath.Join(t.TempDir(), "cache"))
			if len(tt.wantErr) > 0 {
				checkErr(t, err, tt.wantIs, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			checkKernel(t, k, image, filepath.Join(h.Modules, testRelease), vmlinux)
		})
	}
}

func checkErr(t *testing.T, err, wantIs error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got error %q, want it to contain %q", err, w)
		}
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("got error %q, want errors.Is(err, %q)", err, wantIs)
	}
}

func checkKernel(t *testing.T, k *Kernel, image, modules string, vmlinux []byte) {
	t.Helper()
	if k.Image != image || k.Version != testRelease || k.Modules != modules {
		t.Errorf("got Kernel{Image: %q, Version: %q, Modules: %q}, want {%q, %q, %q}",
			k.Image, k.Version, k.Modules, image, testRelease, modules)
	}
	got, err := os.ReadFile(k.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, vmlinux) {
		t.Errorf("got %d-byte vmlinux at %s, want the %d-byte original", len(got), k.Vmlinux, len(vmlinux))
	}
}

func TestPrepareCache(t *testing.T) {
	h := fakeHost(t, testRelease)
	cache := filepath.Join(t.TempDir(), "cache")
	image := filepath.Join(h.Boot, "vmlinuz-"+testRelease)
	mustWrite(t, image, fakeBzImage(testRelease, xzPayload(t, pvhVmlinux())))

	first, err := h.Prepare(image, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	// Mark the cached file: a cache hit must return it untouched.
	mustWrite(t, first.Vmlinux, []byte("marker"))
	second, err := h.Prepare(image, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	if second.Vmlinux != first.Vmlinux {
		t.Errorf("got vmlinux %s on the second call, want %s", second.Vmlinux, first.Vmlinux)
	}
	if got, _ := os.ReadFile(second.Vmlinux); string(got) != "marker" {
		t.Errorf("got cached file content %q, want %q: the cache hit rewrote it", got, "marker")
	}

	// Another image (here the same vmlinux compressed differently) gets its own entry.
	mustWrite(t, image, fakeBzImage(testRelease, zstdPayload(t, pvhVmlinux())))
	third, err := h.Prepare(image, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	if third.Vmlinux == first.Vmlinux {
		t.Errorf("got the same cache entry %s for different image contents", third.Vmlinux)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 2 {
		t.Errorf("got %d files in the cache, want 2 (no temporary files left)", len(entries))
	}
}

func TestPrepareUnreadable(t *testing.T) {
	h := fakeHost(t, testRelease)
	h.readFile = func(name string) ([]byte, error) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	_, err := h.Prepare("/boot/vmlinuz-"+testRelease, "", t.TempDir())
	checkErr(t, err, fs.ErrPermission, "permission denied", "run as root", "sudo chmod a+r /boot/vmlinuz-"+testRelease)
}
