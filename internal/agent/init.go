package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/rootpath"
)

// newRoot is where init assembles the guest's root before switching into it.
const newRoot = "/newroot"

// initMain is PID 1: set up the system, then serve the host.
func initMain() {
	var stages []agentproto.Stage
	stage := func(name string) {
		stages = append(stages, agentproto.Stage{Name: name, Uptime: uptime()})
	}
	stage("init")
	if err := mountEarly(); err != nil {
		fatal(err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fatal(fmt.Errorf("read kernel command line: %w", err))
	}
	snapshot := agentproto.IsSnapshotBoot(string(cmdline))
	// The initramfs's files are out of reach once its root is left.
	loadForkLib()
	// The early fork server (forksrv_early.go), and on a cold boot the
	// channel it comes on while it starts.
	var earlyServer *forkServer
	var early <-chan *forkServer
	var cfg agentproto.BootConfig
	if snapshot {
		// The configuration comes at the snapshot point (snapshot.go).
		if err := loadModules("/modules"); err != nil {
			fatal(err)
		}
		stage("modules")
		// lo is every machine's alike: up before the point, a restore
		// does not bring it up again (~30 ms of one under TCG).
		if err := loopbackUp(); err != nil {
			fatal(err)
		}
		// The machine's disk, when the host made it for this shape: a
		// restore does not mount it again (~0.1-0.15 s under TCG).
		if err := mountPointDisk(string(cmdline)); err != nil {
			fatal(err)
		}
		if pointDisk != nil {
			stage("disk")
		}
		// So is the fork server's bash, from the initramfs's copy: a
		// restore does not load it again. It serves before the point.
		earlyServer = <-startEarlyForkServer(true)
		cfg, err = snapshotPoint(stages)
		stage("restore")
	} else {
		cfg, err = agentproto.ParseBootConfig(string(cmdline))
	}
	if err != nil {
		fatal(err)
	}
	setCoverage(cfg)
	if !snapshot {
		// As a restored machine's, the fork server's bash is the
		// initramfs's copy: it loads while init mounts the root.
		early = startEarlyForkServer(cfg.Init != initSystemd && cfg.Image == nil)
		if err := loadModules("/modules"); err != nil {
			fatal(err)
		}
	}
	// The shares' mounts wait on the host: they go on while init mounts
	// the disk.
	staged := stageShares(cfg)
	if cfg.Display {
		if err := loadDisplayModules(); err != nil {
			fatal(err)
		}
	}
	if !snapshot {
		stage("modules")
	}
	var disk *diskRoot
	if cfg.Disk != nil {
		if disk, err = ownDisk(*cfg.Disk); err != nil {
			fatal(err)
		}
		if pointDisk == nil {
			stage("disk")
		}
	}
	if err := mountRoot(cfg, disk, staged); err != nil {
		fatal(err)
	}
	if early != nil {
		// Not while the early fork server's bash starts in the initramfs.
		earlyServer = <-early
	}
	if err := switchRoot(newRoot); err != nil {
		fatal(err)
	}
	stage("root")
	if cfg.Display {
		// Before systemd runs (it keeps this /run): its udevd is masked.
		if _, err := writeInputRecords("/sys", "/run"); err != nil {
			fatal(err)
		}
	}
	if err := setHostname(cfg.Hostname); err != nil {
		fatal(diskHint(err))
	}
	if !snapshot {
		if err := loopbackUp(); err != nil {
			fatal(err)
		}
	}
	consoleInfo()
	if cfg.Init != initSystemd {
		// Moving the early server into the root, or starting bash when
		// there is none (~0.35-0.45 s of a restored machine's CPU under
		// TCG), goes on while the host configures the machine, not in
		// the first command's time. Commands wait for it (the lock).
		forkServers.mu.Lock()
		go func() {
			adoptForkServer(earlyServer, cfg, true)
			warmForkServer()
		}()
	} else {
		adoptForkServer(earlyServer, cfg, false) // ends it
	}
	if cfg.Init == initSystemd {
		if err := prepareSystemd(cfg.Display); err != nil {
			fatal(err)
		}
		handover = func() error { return execSystemd(stages) }
	}
	// The main goroutine, alone on the main thread, becomes the reaper
	// (reaper.go): everything from here on runs on other threads.
	go func() {
		if cfg.Display && cfg.Init != initSystemd {
			startConsoleShell()
		}
		serve(stages)
	}()
	reapOrphans()
}

// consoleInfo lets the kernel's informational messages reach the console
// (and so the machine's console log) now that the boot is done: the kernel
// boots with "quiet", which keeps the console to errors and saves the time
// an emulated serial port takes to print the boot messages. After boot they
// are what explains a failure: a segfault ("traps: ..."), a link coming up,
// a file system mounted, the OOM killer.
func consoleInfo() {
	// Messages below console_loglevel are printed; KERN_INFO is 6.
	os.WriteFile("/proc/sys/kernel/printk", []byte("7"), 0)
}

// mountEarly mounts what module loading and the mounts need.
func mountEarly() error {
	for _, m := range []struct{ fstype, target string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"},
	} {
		if err := unix.Mount(m.fstype, m.target, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// loadModules loads the modules listed in dir/order, dependencies first (the
// host wrote them in that order), and keeps dir open in initramfsModules.
func loadModules(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open module directory: %w", err)
	}
	initramfsModules = d
	order, err := readAt(d, "order")
	if err != nil {
		return fmt.Errorf("read module list: %w", err)
	}
	for _, name := range strings.Fields(string(order)) {
		if err := loadModuleAt(d, name); err != nil {
			return err
		}
	}
	return nil
}

// initramfsModules is the initramfs's /modules, held open across the root
// switch (which hides the initramfs) for the modules loaded on demand; nil
// outside a guest.
var initramfsModules *os.File

var lazyOnce struct {
	sync.Once
	err error
}

// loadLazyModules loads the modules the initramfs lists in /modules/lazy,
// once.
func loadLazyModules() error {
	lazyOnce.Do(func() {
		if initramfsModules == nil {
			lazyOnce.err = errors.New("load modules: the initramfs is not available")
			return
		}
		list, err := readAt(initramfsModules, "lazy")
		if err != nil {
			lazyOnce.err = fmt.Errorf("read lazy module list: %w", err)
			return
		}
		for _, name := range strings.Fields(string(list)) {
			if err := loadModuleAt(initramfsModules, name); err != nil {
				lazyOnce.err = err
				return
			}
		}
	})
	return lazyOnce.err
}

func readAt(dir *os.File, name string) ([]byte, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(f)
}

func loadModuleAt(dir *os.File, name string) error {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("load module %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.FinitModule(fd, "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", name, err)
	}
	return nil
}

// mountRoot builds the root in newRoot: the host's shared directories, each
// under an overlay, on a writable root. With the machine's disk (mounted by
// mountDisk) the root and the overlays' writable layers live on it and
// survive the next boot; without, they live in a tmpfs. Host directories
// that are not shared (/root, /home, ...) are simply absent: an empty
// directory on the root takes their place. /run is a new tmpfs at every
// boot either way; for systemd, which mounts its own /run unless one is
// there, it is a mount of its own even without the disk.
func mountRoot(cfg agentproto.BootConfig, disk *diskRoot, staged stagedShares) error {
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", newRoot, err)
	}
	state, err := mountBase(cfg, disk)
	if err != nil {
		return err
	}
	if disk != nil || cfg.Image != nil || cfg.Init == initSystemd {
		if err := mountRun(); err != nil {
			return diskHint(err)
		}
	}
	for _, m := range cfg.Mounts {
		if err := mountShare(cfg, m, state, staged); err != nil {
			return diskHint(err)
		}
	}
	for _, l := range cfg.Symlinks {
		dir, err := rootpath.Resolve(newRoot, filepath.Dir(l.Path))
		if err != nil {
			return fmt.Errorf("create root symlink %s: %w", l.Path, err)
		}
		if err := replaceSymlink(filepath.Join(dir, filepath.Base(l.Path)), l.Target); err != nil {
			return diskHint(fmt.Errorf("create root symlink: %w", err))
		}
	}
	return makeRootDirs(newRoot)
}

// rootDir is a directory every root has, made at every boot, and its mode.
type rootDir struct {
	path string
	mode os.FileMode
}

// rootDirs are the directories every root has, in order. The temporary
// directories are sticky (os.ModeSticky: Go's file modes have no 0o1000),
// as on any Unix: a user cannot remove another's files there.
var rootDirs = []rootDir{{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"run", 0o755}, {"tmp", os.ModeSticky | 0o777},
	{"root", 0o700}, {"home", 0o755}, {"mnt", 0o755}, {"var/tmp", os.ModeSticky | 0o777}}

// makeRootDirs makes rootDirs in root, each with its mode, also when it is
// there already with another (a kept disk's).
func makeRootDirs(root string) error {
	for _, d := range rootDirs {
		p, err := mkdirInRoot(root, d.path, d.mode)
		if err != nil {
			return diskHint(fmt.Errorf("create /%s: %w", d.path, err))
		}
		os.Chmod(p, d.mode)
	}
	return nil
}

// mountBase mounts the base of the new root on newRoot and returns where
// the overlays' writable layers go: the machine image under an overlay
// (image.go), else the disk's root directory, else a tmpfs.
func mountBase(cfg agentproto.BootConfig, disk *diskRoot) (string, error) {
	switch {
	case cfg.Image != nil:
		return mountImageRoot(*cfg.Image, disk)
	case disk != nil:
		if err := unix.Mount(disk.root, newRoot, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("bind the disk's root on %s: %w", newRoot, err)
		}
		return disk.state, nil
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return "", fmt.Errorf("mount root tmpfs: %w", err)
	}
	return filepath.Join(newRoot, "run/vmlab"), nil
}

// mountRun mounts the new root's /run.
func mountRun() error {
	run, err := mkdirInRoot(newRoot, "/run", 0o755)
	if err != nil {
		return fmt.Errorf("create /run: %w", err)
	}
	if err := unix.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	return nil
}

// mountShare mounts m in the new root: the share itself, or the share as
// the lower layer of an overlay whose upper and work directories are in
// state, named by m's guest path.
func mountShare(cfg agentproto.BootConfig, m agentproto.Mount, state string, staged stagedShares) error {
	// Through the root's own symlinks (an image's lib -> /usr/lib for
	// /lib/modules), never the initramfs's.
	target, err := mkdirInRoot(newRoot, m.Path, 0o755)
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", m.Path, err)
	}
	if !m.Overlay {
		return mountTag(cfg, m, target)
	}
	// The lower layers are mounted at every boot: they go in /run, which
	// init has just made and is no overlay's.
	lower := filepath.Join(newRoot, "run/vmlab/lower", m.Tag)
	upper := filepath.Join(state, "upper", overlayKey(m.Path))
	work := filepath.Join(state, "work", overlayKey(m.Path))
	for _, d := range []string{lower, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := staged.move(cfg, m, lower); err != nil {
		return err
	}
	lowers := lower
	if cfg.Init == initSystemd {
		hide := filepath.Join(newRoot, "run/vmlab/hide", m.Tag)
		hid, err := hideHostUnits(lower, m.Path, hide)
		if err != nil {
			return err
		}
		if hid {
			lowers = hide + ":" + lower
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lowers, upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", m.Path, err)
	}
	return nil
}

// stageDir holds the overlays' lower layers in the initramfs while they
// are mounted (stageShares), each in a directory named by its tag.
const stageDir = "/lower"

// stagedShares are the mounts of the lower layers of the root's overlays,
// under way in the background, by tag: each says when it is done.
type stagedShares map[string]chan error

// stageShares starts mounting the share of each of cfg's overlays in
// stageDir, each in a goroutine of its own: a mount waits on the host's
// answers (9p's version and attach, virtiofs's init), and the guest's
// CPU meanwhile does the rest of the boot (the display's modules, the
// disk) and the other shares. move puts each where its overlay wants it.
func stageShares(cfg agentproto.BootConfig) stagedShares {
	s := stagedShares{}
	for _, m := range cfg.Mounts {
		if !m.Overlay || s[m.Tag] != nil {
			continue
		}
		done := make(chan error, 1)
		s[m.Tag] = done
		go func() {
			dir := filepath.Join(stageDir, m.Tag)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				done <- fmt.Errorf("create %s: %w", dir, err)
				return
			}
			done <- mountTag(cfg, m, dir)
		}()
	}
	return s
}

// move waits for m's staged mount and moves it to target; a share that
// was not staged is mounted there now.
func (s stagedShares) move(cfg agentproto.BootConfig, m agentproto.Mount, target string) error {
	done := s[m.Tag]
	if done == nil {
		return mountTag(cfg, m, target)
	}
	delete(s, m.Tag)
	if err := <-done; err != nil {
		return err
	}
	if err := unix.Mount(filepath.Join(stageDir, m.Tag), target, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move share %q to %s: %w", m.Tag, m.Path, err)
	}
	return nil
}

// mountTag mounts the host share with m's tag on target. Under an overlay
// the share is only the lower layer, so virtiofs mounts it read-only (the
// host keeps it read-only too; see qemu.virtiofs). Its caching is chosen by
// virtiofsd on the host; m.Cache is 9p's.
func mountTag(cfg agentproto.BootConfig, m agentproto.Mount, target string) error {
	fstype, flags, opts := "9p", uintptr(0), fmt.Sprintf("trans=virtio,version=9p2000.L,msize=%d,access=client", cfg.MSize)
	if m.Cache != "" {
		opts += ",cache=" + m.Cache
	}
	if cfg.FS == "virtiofs" {
		fstype, opts = "virtiofs", ""
		if m.Overlay {
			flags = unix.MS_RDONLY
		}
	}
	if m.ReadOnly {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(m.Tag, target, fstype, flags, opts); err != nil {
		return fmt.Errorf("mount %s share %q on %s: %w", fstype, m.Tag, m.Path, err)
	}
	return nil
}

// switchRoot makes dir the root: the early mounts move into it, then it is
// moved over / and chrooted into. (The initramfs is the root file system
// itself and cannot be unmounted, so pivot_root does not apply.)
func switchRoot(dir string) error {
	for _, m := range []string{"/proc", "/sys", "/dev"} {
		if err := unix.Mount(m, filepath.Join(dir, m), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the new root: %w", m, err)
		}
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("enter the new root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root over /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the new root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("enter the new root: %w", err)
	}
	return mountDevExtras()
}

// mountDevExtras adds what devtmpfs lacks and programs expect.
func mountDevExtras() error {
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		os.MkdirAll(d, 0o755)
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"); err != nil {
		return fmt.Errorf("mount devpts: %w", err)
	}
	if err := unix.Mount("tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		os.Symlink(target, "/dev/"+name)
	}
	return nil
}

func setHostname(name string) error {
	if name == "" {
		return nil
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname %q: %w", name, err)
	}
	if err := os.WriteFile("/etc/hostname", []byte(name+"\n"), 0o644); err != nil {
		return fmt.Errorf("write /etc/hostname: %w", err)
	}
	return nil
}

// loopbackUp brings up lo: without it nothing in the guest reaches
// 127.0.0.1, not even a wait for a local port.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}
