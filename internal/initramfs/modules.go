package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmlab/vmlab/internal/kernel/unpack"
)

// Module is one kernel module to load in the guest.
type Module struct {
	Name string // the kernel's name for it, with '_' for '-', e.g. "virtio_pci"
	Path string // its file in the module tree, possibly compressed
}

// FileName returns the module's name in the archive: the file's base name
// without a compression suffix, e.g. "virtio-rng.ko".
func (m Module) FileName() string { return stripCompression(filepath.Base(m.Path)) }

// stripCompression removes the suffix of a compressed module file name.
func stripCompression(name string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if s, ok := strings.CutSuffix(name, ".ko"+ext); ok {
			return s + ".ko"
		}
	}
	return name
}

// Closure returns the named modules and all they depend on, according to
// modulesDir's modules.dep, each once, every module after its dependencies:
// the order the guest loads them in. Names match with '-' and '_' taken as
// the same. Modules that modules.builtin lists are built into the kernel and
// left out. A name in neither file is an error.
func Closure(modulesDir string, names []string) ([]Module, error) {
	deps, err := readModulesDep(modulesDir)
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(modulesDir)
	if err != nil {
		return nil, err
	}
	c := closure{dir: modulesDir, deps: deps, state: map[string]visit{}}
	for _, name := range names {
		name = moduleName(name)
		if builtin[name] {
			continue
		}
		if _, ok := deps[name]; !ok {
			return nil, fmt.Errorf("resolve module %q: not in %s nor in modules.builtin (`modinfo %s` on the host says whether this kernel has it)",
				name, filepath.Join(modulesDir, "modules.dep"), name)
		}
		if err := c.visit(name); err != nil {
			return nil, err
		}
	}
	return c.order, nil
}

// depEntry is one line of modules.dep.
type depEntry struct {
	path string   // module file, relative to the tree unless absolute
	deps []string // names of the modules it needs, transitively
}

type visit int

const (
	unvisited visit = iota
	visiting
	visited
)

// closure is a depth-first walk of modules.dep that emits each module after
// its dependencies.
type closure struct {
	dir   string
	deps  map[string]depEntry
	state map[string]visit
	order []Module
}

func (c *closure) visit(name string) error {
	switch c.state[name] {
	case visited:
		return nil
	case visiting:
		return fmt.Errorf("resolve module %q: dependency cycle in %s", name, filepath.Join(c.dir, "modules.dep"))
	}
	c.state[name] = visiting
	e := c.deps[name]
	// depmod lists dependencies so that loading them last to first works,
	// which is the order modprobe uses; keep it.
	for i := len(e.deps) - 1; i >= 0; i-- {
		dep := e.deps[i]
		if _, ok := c.deps[dep]; !ok {
			return fmt.Errorf("resolve module %q: it needs %q, which %s lacks", name, dep, filepath.Join(c.dir, "modules.dep"))
		}
		if err := c.visit(dep); err != nil {
			return err
		}
	}
	c.state[name] = visited
	path := e.path
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.dir, path)
	}
	c.order = append(c.order, Module{Name: name, Path: path})
	return nil
}

// readModulesDep parses lines of "path: dep-path dep-path ..." into entries
// keyed by module name.
func readModulesDep(dir string) (map[string]depEntry, error) {
	path := filepath.Join(dir, "modules.dep")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read module dependencies: %w (is %s a module tree? depmod creates modules.dep)", err, dir)
	}
	entries := map[string]depEntry{}
	for lineNo, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("read module dependencies: %s:%d: no colon", path, lineNo+1)
		}
		e := depEntry{path: mod}
		for _, d := range strings.Fields(rest) {
			e.deps = append(e.deps, moduleName(d))
		}
		if name := moduleName(mod); entries[name].path == "" { // the first of two same-named modules wins, as in modprobe
			entries[name] = e
		}
	}
	return entries, nil
}

// readBuiltin returns the names of the modules built into the kernel. A tree
// without modules.builtin has none.
func readBuiltin(dir string) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read built-in modules: %w", err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			names[moduleName(line)] = true
		}
	}
	return names, nil
}

// moduleName turns a module name or path ("kernel/drivers/char/hw_random/virtio-rng.ko.xz",
// "virtio-rng") into the kernel's name for it ("virtio_rng").
func moduleName(s string) string {
	s = strings.TrimSuffix(stripCompression(filepath.Base(s)), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// plainModule returns a module's plain ELF contents, decompressing .ko.xz,
// .ko.zst and .ko.gz files so that the guest needs no decompressor.
func plainModule(m Module, data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("\x7fELF")) {
		return data, nil
	}
	plain, err := unpack.Decode(data, 0)
	if err != nil {
		return nil, fmt.Errorf("decompress module %s (%s): %w", m.Name, m.Path, err)
	}
	if !bytes.HasPrefix(plain, []byte("\x7fELF")) {
		return nil, fmt.Errorf("decompress module %s (%s): result is not an ELF object", m.Name, m.Path)
	}
	return plain, nil
}

// sigMarker ends a module that carries a signature. Before it come the
// signature and a 12-byte struct module_signature whose last 4 bytes are
// the signature's length, big endian (the kernel's module_signature.h).
const sigMarker = "~Module signature appended~\n"

// stripSignature returns the module without its appended signature, or as it
// is when it has none or the trailer does not add up.
func stripSignature(data []byte) []byte {
	rest, ok := bytes.CutSuffix(data, []byte(sigMarker))
	if !ok || len(rest) < 12 {
		return data
	}
	sigLen := int(binary.BigEndian.Uint32(rest[len(rest)-4:]))
	end := len(rest) - 12 - sigLen
	if end < 0 || !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return data
	}
	return data[:end]
}
