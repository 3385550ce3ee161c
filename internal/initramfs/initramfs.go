// Package initramfs builds the guest's initramfs and caches it by content.
//
// The archive is an uncompressed newc cpio: the kernel copies it into its
// rootfs at memory speed, while a compressed one would be decompressed by
// emulated code on every boot under TCG. Its layout is what the guest agent
// relies on:
//
//	/init              the agent binary (Spec.Init), mode 0755
//	/modules/<name>.ko each module of the closure, decompressed
//	/modules/order     the .ko file names in load order, one per line
//	/modules/lazy      those loaded on demand (Spec.Lazy), in load order
//	/modules/display   those loaded by machines with a display (Spec.Display)
//	/forksrv.so        the agent's fork server's bash builtin (Spec.ForkServer), if any
//	/forksrv.shell     the host's shell copied (Spec.Shell), if any: "PATH SIZE MTIME"
//	/usr/... /lib...   that copy: the shell, its loader, libraries and C.UTF-8 locale at their host paths
//	/dev/console       so that /init starts with the console as stdio
//	/dev /proc /sys /run /tmp /newroot  empty mount points
//
// Call Build (or BuildFloor for the boot benchmark) before starting QEMU and
// pass the returned path as its -initrd. Concurrent calls with the same cache
// directory are safe.
package initramfs

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// Spec says what goes into an initramfs.
type Spec struct {
	Init       string   // statically linked executable to install as /init
	ModulesDir string   // module tree, /lib/modules/<release> (kernel.Kernel.Modules); "" means no modules
	Modules    []string // modules to include with their dependencies; names as modprobe takes them
	// StripSignatures removes the signatures appended to modules. The kernel
	// then loads them without hashing each one for the check (saves ~65 ms
	// of a TCG boot over 12 modules) and marks itself tainted (E). Leave it
	// off for a kernel built with CONFIG_MODULE_SIG_FORCE, which refuses
	// unsigned modules.
	StripSignatures bool
	// Lazy are modules included with their dependencies but not loaded at
	// boot: they are listed, in load order, in /modules/lazy (less what
	// Modules already brings), for the agent to load when a machine needs
	// them (virtio_net, only for machines on a network).
	Lazy []string
	// Display are modules included with their dependencies but loaded only
	// by machines with a display (the DRM driver of the emulated card):
	// listed, in load order, in /modules/display, less what Modules
	// brings. A module both lists need is in both.
	Display []string
	// ForkServer is the bash loadable builtin the agent's fork server
	// loads (internal/agent/forksrv), installed as /forksrv.so; empty:
	// none, and commands exec their shell.
	ForkServer string
	// Shell is the host's bash, copied with its loader, libraries and
	// C.UTF-8 locale at their host paths (links kept) and named in
	// /forksrv.shell, for the fork server to start from before the
	// guest's root exists (shell.go); only with ForkServer. Empty: none.
	// A Build that cannot copy it fails with ErrShellCopy.
	Shell string
}

// formatVersion goes into every cache key: change it whenever the layout or
// the cpio writer changes, so that archives built the old way are not reused.
const formatVersion = "vmlab-initramfs-5"

// mountPoints are the empty directories the agent mounts things on.
var mountPoints = []string{"dev", "proc", "sys", "run", "tmp", "newroot"}

// Build writes the archive for spec to cacheDir/initramfs-<hash>.cpio unless
// that file exists already, and returns its path. The hash covers
// formatVersion, the init binary's content and each module's name and file
// content, so any change to them makes a new archive. Hashing content rather
// than sizes and mtimes costs little: with a 16 MiB init and the agent's 18
// Debian modules, a cache hit takes ~27 ms, ~12 ms of it hashing
// (TestBuildHostModules logs the figures).
func Build(spec Spec, cacheDir string) (string, error) {
	in, err := spec.load()
	if err != nil {
		return "", err
	}
	path := filepath.Join(cacheDir, "initramfs-"+in.key()+".cpio")
	if err := cachefile.Use(path, in.write); err != nil {
		return "", fmt.Errorf("write initramfs %s: %w", path, err)
	}
	return path, nil
}

// inputs holds everything an archive is made of, as read from disk.
type inputs struct {
	strip   bool
	init    []byte
	modules []Module
	lazy    []bool      // modules[i] is listed in /modules/lazy
	display []bool      // modules[i] is listed in /modules/display
	raw     [][]byte    // module files as stored, possibly compressed
	forksrv []byte      // Spec.ForkServer's content; nil: none
	shell   []hostEntry // Spec.Shell's copy
	shellID []byte      // its manifest (forksrv.ShellManifest)
}

func (s Spec) load() (*inputs, error) {
	if s.Init == "" {
		return nil, errors.New("build initramfs: no init binary given")
	}
	if len(s.Modules) > 0 && s.ModulesDir == "" {
		return nil, fmt.Errorf("build initramfs: modules %s requested but no module tree given", strings.Join(s.Modules, ", "))
	}
	init, err := readInit(s.Init)
	if err != nil {
		return nil, err
	}
	in := &inputs{init: init, strip: s.StripSignatures}
	if s.ForkServer != "" {
		if in.forksrv, err = os.ReadFile(s.ForkServer); err != nil {
			return nil, fmt.Errorf("read the fork server's builtin: %w", err)
		}
		if s.Shell != "" {
			if in.shell, in.shellID, err = shellCopy(s.Shell); err != nil {
				return nil, fmt.Errorf("build initramfs: %w: %w", ErrShellCopy, err)
			}
		}
	}
	if s.ModulesDir == "" {
		return in, nil
	}
	base, err := Closure(s.ModulesDir, s.Modules)
	if err != nil {
		return nil, err
	}
	in.modules = base
	in.lazy = make([]bool, len(base))
	in.display = make([]bool, len(base))
	if err := in.addGroup(s.ModulesDir, s.Modules, s.Lazy, base, func(i int) { in.lazy[i] = true }); err != nil {
		return nil, err
	}
	if err := in.addGroup(s.ModulesDir, s.Modules, s.Display, base, func(i int) { in.display[i] = true }); err != nil {
		return nil, err
	}
	for _, m := range in.modules {
		data, err := os.ReadFile(m.Path)
		if err != nil {
			return nil, fmt.Errorf("read module %s: %w", m.Name, err)
		}
		in.raw = append(in.raw, data)
	}
	return in, nil
}

// addGroup adds the modules that group needs beyond base (group's closure
// with Modules, less base), and marks each one with mark, also those an
// earlier group added already.
func (in *inputs) addGroup(dir string, modules, group []string, base []Module, mark func(i int)) error {
	if len(group) == 0 {
		return nil
	}
	all, err := Closure(dir, append(slices.Clone(modules), group...))
	if err != nil {
		return err
	}
	for _, m := range all {
		if slices.ContainsFunc(base, func(b Module) bool { return b.Name == m.Name }) {
			continue
		}
		i := slices.IndexFunc(in.modules, func(b Module) bool { return b.Name == m.Name })
		if i < 0 {
			in.modules = append(in.modules, m)
			in.lazy = append(in.lazy, false)
			in.display = append(in.display, false)
			i = len(in.modules) - 1
		}
		mark(i)
	}
	return nil
}

// readInit reads the init binary and checks that the kernel can run it as
// PID 1 from an initramfs holding nothing else: an ELF with no interpreter.
func readInit(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read init binary: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("check init binary %s: not an ELF executable: %w", path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("check init binary %s: it is dynamically linked, and the initramfs has no libraries: build it static (CGO_ENABLED=0 go build)", path)
		}
	}
	return data, nil
}

// key returns the hex SHA-256 of everything that determines the archive.
func (in *inputs) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nstrip %v\ninit %d\n", formatVersion, in.strip, len(in.init))
	h.Write(in.init)
	if in.forksrv != nil {
		fmt.Fprintf(h, "forksrv %d\n", len(in.forksrv))
		h.Write(in.forksrv)
	}
	if in.shellID != nil {
		fmt.Fprintf(h, "shell %q\n", in.shellID)
		for _, e := range in.shell {
			fmt.Fprintf(h, "%q %v %d\n", e.name, e.mode, len(e.data))
			h.Write(e.data)
		}
	}
	for i, m := range in.modules {
		fmt.Fprintf(h, "module %s %s %d lazy=%v display=%v\n", m.Name, m.FileName(), len(in.raw[i]), in.lazy[i], in.display[i])
		h.Write(in.raw[i])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// write writes the archive in the package's documented layout.
func (in *inputs) write(w io.Writer) error {
	cw := NewWriter(w)
	for _, dir := range mountPoints {
		perm := fs.FileMode(0o755)
		if dir == "tmp" {
			perm = 0o777 | fs.ModeSticky
		}
		cw.Dir(dir, perm)
	}
	cw.CharDev("dev/console", 0o600, 5, 1)
	cw.File("init", 0o755, in.init)
	if in.forksrv != nil {
		cw.File("forksrv.so", 0o644, in.forksrv)
	}
	if in.shellID != nil {
		for _, e := range in.shell {
			switch {
			case e.mode&fs.ModeSymlink != 0:
				cw.Symlink(e.name, string(e.data))
			case e.mode.IsDir():
				cw.Dir(e.name, e.mode.Perm())
			default:
				cw.File(e.name, e.mode.Perm(), e.data)
			}
		}
		cw.File(manifestName, 0o644, in.shellID)
	}
	cw.Dir("modules", 0o755)
	var order, lazy, display strings.Builder
	for i, m := range in.modules {
		data, err := plainModule(m, in.raw[i])
		if err != nil {
			return err
		}
		if in.strip {
			data = stripSignature(data)
		}
		cw.File("modules/"+m.FileName(), 0o644, data)
		if in.lazy[i] {
			lazy.WriteString(m.FileName() + "\n")
		}
		if in.display[i] {
			display.WriteString(m.FileName() + "\n")
		}
		if !in.lazy[i] && !in.display[i] {
			order.WriteString(m.FileName() + "\n")
		}
	}
	cw.File("modules/order", 0o644, []byte(order.String()))
	cw.File("modules/lazy", 0o644, []byte(lazy.String()))
	cw.File("modules/display", 0o644, []byte(display.String()))
	return cw.Close()
}
