package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// moduleIndex is what modprobe can load in one kernel: module names (with
// '-' as '_', as modprobe compares them), built-in ones, and aliases.
type moduleIndex struct {
	dir     string
	names   map[string]bool
	builtin map[string]bool
	// aliases are read only when a name is neither a module nor built in:
	// modules.alias is 26,000 lines (Debian's 6.1) and took ~60 ms to read
	// here, where modules.dep and modules.builtin took ~30 ms.
	aliasOnce sync.Once
	aliases   map[string]bool
}

func (x *moduleIndex) has(name string) bool {
	n := modName(name)
	if x.names[n] || x.builtin[n] {
		return true
	}
	x.aliasOnce.Do(func() {
		x.aliases = make(map[string]bool)
		for _, f := range []string{"modules.alias", "modules.builtin.alias"} {
			readLines(filepath.Join(x.dir, f), func(line string) {
				if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "alias" {
					x.aliases[fields[1]] = true
				}
			})
		}
	})
	return x.aliases[name]
}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// indexes caches one moduleIndex per module tree, read once per process.
var indexes sync.Map // dir -> *moduleIndex

// modules returns the index of h's module tree; nil when there is none to
// check against.
func (h Host) modules() (*moduleIndex, error) {
	if h.Modules == "" {
		return nil, nil
	}
	if x, ok := indexes.Load(h.Modules); ok {
		return x.(*moduleIndex), nil
	}
	x := &moduleIndex{dir: h.Modules, names: make(map[string]bool), builtin: make(map[string]bool)}
	if err := readLines(filepath.Join(h.Modules, "modules.dep"), func(line string) {
		path, _, _ := strings.Cut(line, ":")
		x.names[modName(moduleBase(path))] = true
	}); err != nil {
		return nil, fmt.Errorf("read the kernel's module list: %w", err)
	}
	readLines(filepath.Join(h.Modules, "modules.builtin"), func(line string) { x.builtin[modName(moduleBase(line))] = true })
	x2, _ := indexes.LoadOrStore(h.Modules, x)
	return x2.(*moduleIndex), nil
}

// HasModule reports whether the kernel of h's module tree can load the
// module or has it built in; true when there is no tree to look in.
func (h Host) HasModule(name string) bool {
	x, err := h.modules()
	return err != nil || x == nil || x.has(name)
}

// moduleBase turns kernel/fs/overlayfs/overlay.ko.xz into overlay.
func moduleBase(path string) string {
	base := filepath.Base(strings.TrimSpace(path))
	name, _, _ := strings.Cut(base, ".ko")
	return name
}

func readLines(path string, each func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); line != "" && !strings.HasPrefix(line, "#") {
			each(line)
		}
	}
	return s.Err()
}

// loaded reports whether the host's kernel has the module now: loaded, or
// built in.
func (h Host) loaded(name string) bool {
	if _, err := os.Stat(filepath.Join(h.Loaded, modName(name))); err == nil && h.Loaded != "" {
		return true
	}
	x, err := h.modules()
	return err == nil && x != nil && x.builtin[modName(name)]
}

// perInterface are the sysctl directories with one subdirectory per network
// interface. The guest's interfaces (eth1, ...) are not the host's, so
// their settings are looked up under "default", which every kernel has.
var perInterface = []string{"net/ipv4/conf", "net/ipv6/conf", "net/ipv4/neigh", "net/ipv6/neigh", "net/mpls/conf"}

// sysctl reports whether key names a setting in h.Sysctls: in sysctl's dotted
// form (net.ipv4.ip_forward) or with slashes (net/ipv4/conf/eth0.100/rp_filter).
func (h Host) sysctl(key string) error {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	path = strings.Trim(path, "/")
	if key == "" || strings.Contains(path, "..") {
		return fmt.Errorf("sysctl %q: not a sysctl name", key)
	}
	for _, dir := range perInterface {
		if rest, ok := strings.CutPrefix(path, dir+"/"); ok {
			if i := strings.LastIndexByte(rest, '/'); i > 0 {
				if _, err := os.Stat(filepath.Join(h.Sysctls, path)); err != nil {
					path = dir + "/default/" + rest[i+1:]
				}
			}
		}
	}
	fi, err := os.Stat(filepath.Join(h.Sysctls, path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sysctl %q: the kernel has no such setting (no %s)", key, filepath.Join(h.Sysctls, path))
	case err != nil:
		return fmt.Errorf("sysctl %q: %w", key, err)
	case fi.IsDir():
		return fmt.Errorf("sysctl %q: a directory of settings, not a setting", key)
	}
	return nil
}
