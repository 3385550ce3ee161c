// Package kernel finds the kernel a machine boots and prepares it for QEMU.
//
// Distro kernels ship as compressed bzImages. Under TCG the guest spends ~5 s
// decompressing Debian's xz payload on every boot, so Prepare extracts the
// ELF vmlinux inside once, checks that it has a PVH entry point (QEMU's
// -kernel boots such an ELF directly, skipping both the decompressor and the
// real-mode setup), and caches it keyed by the bzImage's content. Booting
// that vmlinux took a shell-ready guest from 10.4 s to 5.5 s here
// (shared/DESIGN.md). Extracting Debian's 6.1 kernel (8 MB xz to 63 MB)
// takes ~1.6 s once; a cache hit, which still reads and hashes the 8 MB
// image, takes ~11 ms (TestHostKernel logs both).
//
// Call Find to pick an image, then Prepare before starting QEMU. Both only
// read the host's files; Prepare writes only inside its cache directory, and
// concurrent calls with the same cache directory are safe.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Kernel is a kernel prepared for booting.
type Kernel struct {
	Image   string // the image it came from: a bzImage, or the vmlinux itself
	Vmlinux string // uncompressed x86-64 ELF with a PVH entry note, for QEMU's -kernel
	Version string // kernel release, e.g. "6.1.0-56-amd64"
	Modules string // module tree for Version, /lib/modules/<Version> by default
}

// Host says where a machine keeps its kernels and module trees. The zero value
// means the running host's /boot and /lib/modules; tests point it elsewhere.
type Host struct {
	Boot    string // holds vmlinuz-<release> images; "" means /boot
	Modules string // holds one <release> module tree per kernel; "" means /lib/modules

	// readFile reads an image; nil means os.ReadFile. Tests replace it to
	// see permission errors while running as root.
	readFile func(string) ([]byte, error)
}

// Find returns the kernel image to boot on the running host; see Host.Find.
func Find(path string) (string, error) { return Host{}.Find(path) }

// Prepare prepares image for booting on the running host; see Host.Prepare.
func Prepare(image, modulesDir, cacheDir string) (*Kernel, error) {
	return Host{}.Prepare(image, modulesDir, cacheDir)
}

func (h Host) bootDir() string    { return cmpOr(h.Boot, "/boot") }
func (h Host) modulesDir() string { return cmpOr(h.Modules, "/lib/modules") }

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// Prepare reads image, a bzImage or an uncompressed ELF vmlinux, and returns
// it ready for booting. A bzImage's vmlinux is extracted to
// cacheDir/vmlinux-<sha256 of the image> unless that file exists already; a
// vmlinux is used where it is. modulesDir is the module tree to check against
// the kernel's release; "" means <h.Modules>/<release>.
//
// Errors say what to do: an unreadable image (distro images are often mode
// 0600), a kernel built without CONFIG_PVH (wraps ErrNoPVH), a compression
// vmlab cannot undo, a missing module tree or one for another release.
func (h Host) Prepare(image, modulesDir, cacheDir string) (*Kernel, error) {
	data, err := h.readImage(image)
	if err != nil {
		return nil, err
	}
	if isELF(data) {
		return h.prepareVmlinux(image, data, modulesDir)
	}
	return h.prepareBzImage(image, data, modulesDir, cacheDir)
}

func (h Host) prepareBzImage(image string, data []byte, modulesDir, cacheDir string) (*Kernel, error) {
	hdr, err := parseSetupHeader(data)
	if err != nil {
		return nil, fmt.Errorf("read kernel image %s: %w", image, err)
	}
	modules, err := h.moduleTree(image, hdr.release, modulesDir)
	if err != nil {
		return nil, err
	}
	vmlinux, err := extractCached(image, data, hdr, cacheDir)
	if err != nil {
		return nil, err
	}
	return &Kernel{Image: image, Vmlinux: vmlinux, Version: hdr.release, Modules: modules}, nil
}

func (h Host) prepareVmlinux(image string, data []byte, modulesDir string) (*Kernel, error) {
	if err := checkVmlinux(data); err != nil {
		return nil, fmt.Errorf("check vmlinux %s: %w", image, err)
	}
	release, err := bannerRelease(data)
	if err != nil {
		return nil, fmt.Errorf("read release of vmlinux %s: %w", image, err)
	}
	modules, err := h.moduleTree(image, release, modulesDir)
	if err != nil {
		return nil, err
	}
	return &Kernel{Image: image, Vmlinux: image, Version: release, Modules: modules}, nil
}

func (h Host) readImage(path string) ([]byte, error) {
	read := h.readFile
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(path)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("read kernel image %s: %w (distro kernels are often readable only by root: run as root, make it readable with `sudo chmod a+r %s`, or pass a readable copy)", path, err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read kernel image %s: %w", path, err)
	}
	return data, nil
}

// moduleTree returns the module tree for release: dir, or the host's default.
// depmod and modprobe find a tree by its directory name, so a tree whose name
// is another release belongs to another kernel.
func (h Host) moduleTree(image, release, dir string) (string, error) {
	if dir == "" {
		dir = filepath.Join(h.modulesDir(), release)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("find modules for kernel %s (%s): no directory %s: install that kernel's modules (Debian: linux-image-%s, Ubuntu: linux-modules-%s) or pass a module tree", release, image, dir, release, release)
	}
	if base := filepath.Base(dir); base != release {
		return "", fmt.Errorf("check module tree %s: it is for kernel %s, but kernel image %s is %s: pass the module tree of %s", dir, base, image, release, release)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		return "", fmt.Errorf("check module tree %s: %w (run depmod %s)", dir, err, release)
	}
	return dir, nil
}
