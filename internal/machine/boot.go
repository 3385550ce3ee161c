package machine

import (
	"cmp"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmlab/vmlab/internal/agent/forksrv"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/initramfs"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

// guestModules are the kernel modules the agent loads before it mounts the
// root, by transport: the virtio PCI transport, the agent's serial port, the
// hardware RNG (virtio_rng: the kernel's RNG is ready at once instead of
// after tens of seconds of TCG jitter), the file system the root's shares
// come over, overlay, and the machine's disk (diskModules). Their dependencies
// come along (modules.dep: fuse for virtiofs); built-in ones are skipped.
// Only one share transport goes in: each module costs boot time. virtio_blk
// is there for the machine's disk, and so for its extra disks too.
//
// virtio_balloon reports the pages the guest frees to QEMU (the balloon
// device with free-page-reporting, which every machine has), which gives
// them back to the host: a machine that used memory once does not keep it.
var guestModules = map[string][]string{
	"9p":       append([]string{"virtio_pci", "virtio_console", "virtio_rng", "virtio_balloon", "9pnet_virtio", "9p", "overlay"}, diskModules...),
	"virtiofs": append([]string{"virtio_pci", "virtio_console", "virtio_rng", "virtio_balloon", "virtiofs", "overlay"}, diskModules...),
}

// BootOptions choose what machines boot. Zero values pick the defaults.
type BootOptions struct {
	// Kernel is a bzImage or vmlinux; empty: the newest /boot/vmlinuz-*
	// with a matching /lib/modules.
	Kernel string
	// Modules is the kernel's module tree; empty: /lib/modules/<version>.
	Modules string
	// Agent is a static build of vmlab to run as the guest's init; empty:
	// $VMLAB_AGENT, else this program when it is statically linked.
	Agent string
	// QEMU is the qemu-system-x86_64 binary; empty: from PATH.
	QEMU string
	// CacheDir holds the extracted vmlinux and the initramfs; empty:
	// $XDG_CACHE_HOME/vmlab or ~/.cache/vmlab.
	CacheDir string
	// Accel forces an accelerator ("kvm" or "tcg"); empty: $VMLAB_ACCEL,
	// else KVM when a test boot under it works (cached), else TCG.
	Accel string
	// FS forces the transport of the guest's root and shares ("9p" or
	// "virtiofs", which needs virtiofsd and root); empty: $VMLAB_FS, else
	// 9p when Snapshot is on, else virtiofs where it works in full, 9p
	// elsewhere (see chooseFS).
	FS string
	// Screen shows the displays of machines declared with one to the
	// person running the test: "vnc" (a unix socket per machine) or
	// "window" (QEMU's GTK window, which needs a desktop session and
	// qemu-system-gui); empty: $VMLAB_SCREEN, else none ("none").
	Screen string
	// Snapshot restores machines from a snapshot of their shape's boot,
	// taken at the first boot of that shape ("on"; docs/snapshots.md), or
	// boots every one cold ("off"); empty: $VMLAB_SNAPSHOT, else on. With
	// it on, FS defaults to 9p: virtiofs cannot be migrated, and its
	// memory must be shared with virtiofsd, not the snapshot's private
	// copy.
	Snapshot string
	// SnapshotDir holds the snapshots when Snapshot is on; empty: the
	// cache's (SnapshotDir(CacheDir)). `vmlab bench` gives a temporary
	// one, so that it leaves nothing in the user's cache.
	SnapshotDir string
	// ForkServer runs commands through a fork server in the guest, a warm
	// bash that clones itself per command instead of an exec of the shell
	// ("on"; docs/architecture.md "Commands"), or execs every shell
	// ("off"); empty: $VMLAB_FORKSRV, else on. It needs cc on the host.
	ForkServer string
}

// Boot is what every machine of a run boots: prepared once, shared by all.
type Boot struct {
	Kernel    *kernel.Kernel
	Initramfs string
	QEMU      string
	Accel     qemu.Accel
	// Firmware is qboot when QEMU ships it: it starts the kernel sooner than
	// SeaBIOS.
	Firmware string
	// FS is the transport of the guest's files: "9p" or "virtiofs".
	FS string
	// Virtiofsd is the virtiofsd executable when FS is "virtiofs".
	Virtiofsd string
	// Screen is how the displays are watched from the host (BootOptions).
	Screen qemu.Screen
	// Prepared says how long preparing took (a cache hit is fast).
	Prepared time.Duration
	// display builds the initramfs of machines with a display when the
	// first one boots; nil: they boot Initramfs (tests' fake boots).
	display *displayInitramfs
	// snapshots is the cache directory of machine snapshots
	// (snapshot.go); empty: every machine boots cold.
	snapshots string
	snapBase  snapshotBase
	// cache is the cache directory the kernel and initramfs came from.
	cache string
	// forkNote says why commands exec their shell although the fork server
	// was asked for (no cc on the host); each Boot's first machine logs it.
	forkNote     string
	forkNoteOnce sync.Once
}

// displayInitramfs is Initramfs with the display's modules as well. It is
// an archive of its own so that machines without a display boot no more
// than before: the DRM modules add 2 MB (Debian's 6.1) for the kernel
// to unpack at every boot.
type displayInitramfs struct {
	spec  initramfs.Spec
	cache string
	once  sync.Once
	path  string
	err   error
}

// InitramfsFor returns the initramfs a machine boots: Initramfs, or with
// display the one that also holds the display's modules, built (or found
// in the cache) at the first call.
func (b *Boot) InitramfsFor(display bool) (string, error) {
	if !display || b.display == nil {
		return b.Initramfs, nil
	}
	d := b.display
	d.once.Do(func() { d.path, d.err = initramfs.Build(d.spec, d.cache) })
	return d.path, d.err
}

// readForkServer reads BootOptions.ForkServer, else $VMLAB_FORKSRV: on
// unless "off".
func readForkServer(asked string, getenv func(string) string) (bool, error) {
	from := "fork server"
	if asked == "" {
		asked, from = getenv("VMLAB_FORKSRV"), "VMLAB_FORKSRV"
	}
	switch asked {
	case "", "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("prepare boot: %s: unknown value %q (want on or off)", from, asked)
}

// PrepareBoot finds the kernel, QEMU and the agent, and builds (or finds in
// the cache) the vmlinux and the initramfs.
func PrepareBoot(opts BootOptions) (*Boot, error) {
	start := time.Now()
	if opts.Accel == "" {
		opts.Accel = os.Getenv("VMLAB_ACCEL")
	}
	if opts.Accel != "" && opts.Accel != "kvm" && opts.Accel != "tcg" {
		return nil, fmt.Errorf("prepare boot: unknown accelerator %q (want kvm or tcg)", opts.Accel)
	}
	if opts.Accel != "kvm" {
		// A TCG guest's kernel arguments carry the host's TSC frequency,
		// measured once per process (~20 ms): measured meanwhile, it is
		// not in the first machine's start (and goes unused when the
		// accelerator chosen below is KVM).
		go hostTSCkHz()
	}
	snapshot, err := readSnapshot(opts.Snapshot, os.Getenv)
	if err != nil {
		return nil, err
	}
	opts.FS = readFS(opts.FS, snapshot, os.Getenv)
	if opts.FS != "" && guestModules[opts.FS] == nil {
		return nil, fmt.Errorf("prepare boot: unknown file system %q (want 9p or virtiofs)", opts.FS)
	}
	screen, screenFrom, err := readScreen(opts.Screen, os.Getenv)
	if err != nil {
		return nil, err
	}
	// Every booting command gets here, also those that make no temporary
	// directory of their own (vmlab run -out DIR).
	sweepTempDirsOnce()
	b := &Boot{}
	if b.FS, b.Virtiofsd, err = chooseFS(opts.FS); err != nil {
		return nil, err
	}
	if b.QEMU, err = qemu.Find(opts.QEMU); err != nil {
		return nil, err
	}
	if err := checkScreen(screen, screenFrom, b.QEMU, os.Getenv); err != nil {
		return nil, err
	}
	b.Screen = screen
	cache, err := CacheDir(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	b.cache = cache
	image, err := kernel.Find(opts.Kernel)
	if err != nil {
		return nil, err
	}
	if b.Kernel, err = kernel.Prepare(image, opts.Modules, cache); err != nil {
		return nil, err
	}
	agentBin, err := findAgent(opts.Agent)
	if err != nil {
		return nil, err
	}
	forkServer, err := readForkServer(opts.ForkServer, os.Getenv)
	if err != nil {
		return nil, err
	}
	ispec := initramfs.Spec{
		Init: agentBin, ModulesDir: b.Kernel.Modules, Modules: guestModules[b.FS],
		Lazy:            lazyModules(b.Kernel),
		StripSignatures: !forcesSignatures(b.Kernel.Version),
	}
	if forkServer {
		if ispec.ForkServer, err = forksrv.Build(cache); err != nil {
			b.forkNote = fmt.Sprintf("commands exec their shell: %v", err)
		} else {
			ispec.Shell = agentproto.BashPath
		}
	}
	b.Initramfs, err = initramfs.Build(ispec, cache)
	if errors.Is(err, initramfs.ErrShellCopy) {
		// The root's shell serves, started after the root is up.
		b.forkNote = fmt.Sprintf("the fork server starts once the root is up: %v", err)
		ispec.Shell = ""
		b.Initramfs, err = initramfs.Build(ispec, cache)
	}
	if err != nil {
		return nil, err
	}
	if ispec.Display = displayModules(b.Kernel); ispec.Display != nil {
		b.display = &displayInitramfs{spec: ispec, cache: cache}
	}
	if _, err := os.Stat(qbootPath); err == nil {
		b.Firmware = qbootPath
	}
	switch opts.Accel {
	case "":
		b.Accel = b.chooseAccel(cache)
	case "tcg":
		b.Accel = qemu.Accel{Name: "tcg", Why: "asked for"}
	case "kvm":
		if b.Accel = qemu.ProbeAccel(); b.Accel.Name != "kvm" {
			return nil, fmt.Errorf("prepare boot: accelerator kvm is not usable: %s", b.Accel.Why)
		}
	}
	if snapshot {
		b.snapshots = cmp.Or(opts.SnapshotDir, SnapshotDir(cache))
	}
	b.Prepared = time.Since(start)
	return b, nil
}

// readScreen reads the screen asked for, else $VMLAB_SCREEN, and says
// which of the two it read ("screen" or "VMLAB_SCREEN") for errors.
func readScreen(asked string, getenv func(string) string) (qemu.Screen, string, error) {
	from := "screen"
	if asked == "" {
		asked, from = getenv("VMLAB_SCREEN"), "VMLAB_SCREEN"
	}
	screen, err := qemu.ParseScreen(asked)
	if err != nil {
		return screen, from, fmt.Errorf("prepare boot: %s: %w", from, err)
	}
	return screen, from, nil
}

// checkScreen checks, for a window, that QEMU (bin) can open one, so that
// a missing package or session is one error before any machine boots.
func checkScreen(screen qemu.Screen, from, bin string, getenv func(string) string) error {
	if screen != qemu.ScreenWindow {
		return nil
	}
	if err := qemu.CheckWindow(bin, getenv); err != nil {
		return fmt.Errorf("prepare boot: %s window: %w", from, err)
	}
	return nil
}

// displayModules returns the modules that drive the emulated display of
// machines declared with one (qemu.Config.Display, QEMU's standard VGA):
// bochs, its DRM driver, with which the kernel's framebuffer console comes
// up on the display, and evdev, which gives its keyboard the
// /dev/input/event device an X server reads keys from (the console reads
// them without it; Debian builds it as a module). They are loaded only by
// those machines. A kernel without bochs gets none, and spec's Check
// refuses display = True for it.
func displayModules(k *kernel.Kernel) []string {
	host := spec.HostFor(k.Version, k.Modules)
	if !host.HasModule(spec.DisplayModule) {
		return nil
	}
	mods := []string{spec.DisplayModule}
	if host.HasModule(inputModule) {
		mods = append(mods, inputModule)
	}
	return mods
}

// lazyModules are the initramfs's modules loaded on demand: virtio_net
// when the network is configured, and erofs, which machine images are
// made of (docs/images.md), before an image machine mounts its root. A
// machine on the host's root never loads erofs.
func lazyModules(k *kernel.Kernel) []string {
	mods := []string{"virtio_net"}
	if spec.HostFor(k.Version, k.Modules).HasModule("erofs") {
		mods = append(mods, "erofs")
	}
	return mods
}

// inputModule is the kernel's evdev, the /dev/input/eventN interface.
const inputModule = "evdev"

const qbootPath = "/usr/share/qemu/qboot.rom"

// readFS returns the transport asked for, else $VMLAB_FS, else 9p when
// machines are restored from snapshots (virtiofs cannot be), else ""
// (chooseFS picks).
func readFS(asked string, snapshot bool, getenv func(string) string) string {
	switch {
	case asked != "":
		return asked
	case getenv("VMLAB_FS") != "":
		return getenv("VMLAB_FS")
	case snapshot:
		return "9p"
	}
	return ""
}

// chooseFS returns the transport for the guest's files, fs or the default
// when fs is empty, and virtiofsd's path for virtiofs.
//
// virtiofs needs virtiofsd and root (its sandbox makes namespaces, and the
// read-only binds under it need CAP_SYS_ADMIN). The default is virtiofs where
// it also can hold a descriptor for every file the guest looks up
// (qemu.CheckVirtiofsdFiles), 9p elsewhere. Measured under TCG, three boots
// each: boot 2.02 s against 2.09 s (medians), a cold find of /usr/include
// (7,911 files) 1.0 s against 2.1 s, reading 2,000 files of /usr/share/doc
// 3.6 s against 5.5 s, Succeed("true") 12-15 ms against 16 ms.
func chooseFS(fs string) (string, string, error) {
	if fs == "9p" {
		return fs, "", nil
	}
	virtiofsd, err := qemu.FindVirtiofsd("")
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("virtiofs needs root (virtiofsd sandboxes itself in new namespaces)")
	}
	if err == nil && fs == "" {
		err = qemu.CheckVirtiofsdFiles()
	}
	switch {
	case err == nil:
		return "virtiofs", virtiofsd, nil
	case fs == "":
		return "9p", "", nil
	}
	return "", "", fmt.Errorf("prepare boot: file system virtiofs: %w; use 9p", err)
}

// CacheDir returns dir, or the default cache directory when dir is empty,
// creating it.
func CacheDir(dir string) (string, error) {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find cache directory: %w", err)
		}
		dir = filepath.Join(base, "vmlab")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create cache directory: %w", err)
	}
	return dir, nil
}

// forcesSignatures reports whether the kernel refuses unsigned modules, by
// its config in /boot. Without a config, assume it does: keeping signatures
// costs ~65 ms of boot, stripping them from such a kernel fails every boot.
func forcesSignatures(version string) bool {
	config, err := os.ReadFile("/boot/config-" + version)
	if err != nil {
		return true
	}
	return strings.Contains(string(config), "\nCONFIG_MODULE_SIG_FORCE=y")
}

// findAgent returns a statically linked vmlab binary: the guest runs it as
// init before any library of the host is mounted. It looks at the option,
// then $VMLAB_AGENT, then this program, then vmlab on PATH.
func findAgent(path string) (string, error) {
	if path != "" {
		return checkStatic(path, "the agent option")
	}
	if env := os.Getenv("VMLAB_AGENT"); env != "" {
		return checkStatic(env, "$VMLAB_AGENT")
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find agent: %w", err)
	}
	self, selfErr := checkStatic(exe, "this program")
	if selfErr == nil {
		return self, nil
	}
	if onPath, err := exec.LookPath("vmlab"); err == nil {
		if p, err := checkStatic(onPath, "vmlab on PATH"); err == nil {
			return p, nil
		}
	}
	return "", selfErr
}

// checkStatic returns path if it is an ELF executable without an interpreter.
func checkStatic(path, from string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("find agent: %s (%s) is not a static vmlab executable: %w", path, from, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("find agent: %s (%s) is dynamically linked; the guest needs a static vmlab as its init: build one with CGO_ENABLED=0 go build ./cmd/vmlab and set VMLAB_AGENT to it", path, from)
		}
	}
	return path, nil
}
