package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// virtiofsdPaths are where distributions install virtiofsd: QEMU's C daemon
// on Debian 12 and Ubuntu 22.04 (package qemu-system-common), the Rust one on
// Fedora and Debian 13. vmlab is tested with the C daemon.
var virtiofsdPaths = []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"}

// ErrNoVirtiofsd says virtiofsd is not installed.
var ErrNoVirtiofsd = errors.New("virtiofsd not found (Debian 12: /usr/lib/qemu/virtiofsd from qemu-system-common; elsewhere: the virtiofsd package)")

// FindVirtiofsd returns virtiofsd: path when set (it must exist), else the
// first of the usual places that exists, else virtiofsd from PATH.
func FindVirtiofsd(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("find virtiofsd: %w", err)
		}
		return path, nil
	}
	for _, p := range virtiofsdPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", ErrNoVirtiofsd
}

// virtiofsdFiles is the open-file limit the C virtiofsd raises itself to
// (or fs.file-max less 16384, if lower). It holds an O_PATH descriptor for
// every file the guest has looked up, until the guest evicts that inode, and
// an overlay on top keeps the lower inodes it has seen: a guest that walks
// more files than the limit gets EMFILE from then on.
const virtiofsdFiles = 1_000_000

// CheckVirtiofsdFiles says why virtiofsd started from this process could not
// hold virtiofsdFiles open files, or nil when it can: the hard limit allows
// it, or CAP_SYS_RESOURCE lets virtiofsd raise it. On the project's machine
// (a container: hard limit 20,000, no CAP_SYS_RESOURCE) `find /usr` in the
// guest failed with EMFILE after 47,603 of 131,454 files.
func CheckVirtiofsdFiles() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Max >= virtiofsdFiles || hasCapability(unix.CAP_SYS_RESOURCE) {
		return nil
	}
	return fmt.Errorf("virtiofsd could hold %d open files (the hard RLIMIT_NOFILE; no CAP_SYS_RESOURCE to raise it), one per file the guest looks up", lim.Max)
}

// hasCapability reports whether this process has capability c (below 32)
// in its effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3 takes two
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<c) != 0
}

// virtiofsSocket is the vhost-user socket of share i, in Dir.
func (c Config) virtiofsSocket(i int) string {
	return filepath.Join(c.Dir, fmt.Sprintf("vfs%d.sock", i))
}

// virtiofsArgs returns the devices for the shares over virtiofs. vhost-user
// needs the guest's RAM in memory that virtiofsd can map, hence the shared
// memfd backend (one NUMA node, the machine's whole memory).
func (c Config) virtiofsArgs(memMiB int) []string {
	if len(c.Shares) == 0 {
		return nil
	}
	args := []string{
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", memMiB),
		"-numa", "node,memdev=mem",
	}
	for i, s := range c.Shares {
		id := fmt.Sprintf("vfs%d", i)
		args = append(args,
			"-chardev", "socket,id="+id+",path="+escape(c.virtiofsSocket(i)),
			"-device", "vhost-user-fs-pci,chardev="+id+",tag="+s.Tag)
	}
	return args
}

// virtiofsdArgs returns the arguments of the virtiofsd serving share on the
// listening socket passed as fd 3. Its default sandbox puts it in its own
// mount, PID and network namespaces, pivoted into the shared directory,
// under seccomp. cache=always for a static tree: with cache=auto the guest
// revalidates every path a new process looks up, and Succeed("true") took
// 73 ms instead of 13 ms under TCG (vmlab bench, the host root over
// virtiofs). log_level=warn: at info it logs every connection, which would
// crowd its real errors out of the stderr tail.
func virtiofsdArgs(s Share) []string {
	cache := "auto"
	if s.Static {
		cache = "always"
	}
	return []string{
		"--fd=3", "-o", "source=" + fuseEscape.Replace(s.HostPath), "-o", "cache=" + cache,
		"-o", "log_level=warn",
	}
}

// fuseEscape quotes a value in virtiofsd's FUSE-style -o list, which splits
// at commas unless a backslash escapes them.
var fuseEscape = strings.NewReplacer(`\`, `\\`, ",", `\,`)

// virtiofs is the virtiofsd processes serving one QEMU's shares, one each.
//
// QEMU's C virtiofsd has no read-only option, so a read-only share is made
// read-only below it: the daemons are started from the launcher's thread,
// whose mount namespace has the share as a recursive bind mount of itself
// marked read-only (mount_setattr, Linux 5.12). A daemon inherits that
// namespace, its sandbox bind-mounts the source again (a bind keeps the
// read-only flag) and it keeps no CAP_SYS_ADMIN to undo it: every write the
// guest sends fails with EROFS on the host.
type virtiofs struct {
	daemons []*daemon
	exited  chan struct{} // closed when the first daemon exits
	first   *daemon       // the first to exit, set before exited is closed
	done    chan struct{} // closed when all have exited
}

// daemon is one virtiofsd.
type daemon struct {
	share  Share
	cmd    *exec.Cmd
	stderr tail
	done   chan struct{} // closed when cmd.Wait has returned; err is set
	err    error
}

// startVirtiofs starts a virtiofsd for each share of cfg from l's thread.
// Each gets a socket that listens before it starts, so QEMU can connect at
// once and nothing polls for the socket to appear.
func startVirtiofs(cfg Config, l *launcher) (*virtiofs, error) {
	bin, err := FindVirtiofsd(cfg.Virtiofsd)
	if err != nil {
		return nil, err
	}
	var socks []*os.File
	defer func() {
		for _, s := range socks {
			s.Close() // each daemon holds its own copy
		}
	}()
	for i := range cfg.Shares {
		s, err := listenFile(cfg.virtiofsSocket(i))
		if err != nil {
			return nil, err
		}
		socks = append(socks, s)
	}
	v := &virtiofs{exited: make(chan struct{}), done: make(chan struct{})}
	l.do(func() {
		for i := 0; err == nil && i < len(cfg.Shares); i++ {
			err = v.start(bin, cfg.Shares[i], socks[i])
		}
	})
	if err != nil {
		v.kill()
	}
	go v.wait()
	if err != nil {
		<-v.done
		return nil, err
	}
	return v, nil
}

// listenFile returns a blocking listening unix socket on path, as a file to
// hand to a child. It stays on disk after the driver closes its copy; the
// machine's directory is removed with the machine.
func listenFile(path string) (*os.File, error) {
	os.Remove(path)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		f.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("restrict %s: %w", path, err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		f.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return f, nil
}

// wait waits for every daemon, noting the first to exit, and closes done.
func (v *virtiofs) wait() {
	defer close(v.done)
	var once sync.Once
	var wg sync.WaitGroup
	for _, d := range v.daemons {
		wg.Go(func() {
			d.err = d.cmd.Wait()
			close(d.done)
			once.Do(func() {
				v.first = d
				close(v.exited)
			})
		})
	}
	wg.Wait()
}

// readOnlyBinds makes every read-only share a read-only bind mount of
// itself, in the calling thread's private mount namespace.
func readOnlyBinds(shares []Share) error {
	for _, s := range shares {
		if !s.ReadOnly {
			continue
		}
		if err := unix.Mount(s.HostPath, s.HostPath, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s for virtiofsd: %w", s.HostPath, err)
		}
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(unix.AT_FDCWD, s.HostPath, unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("make %s read-only for virtiofsd: %w", s.HostPath, err)
		}
	}
	return nil
}

// start starts the daemon for share on sock, in its own process group, killed
// when the launcher's thread ends.
func (v *virtiofs) start(bin string, share Share, sock *os.File) error {
	d := &daemon{share: share, done: make(chan struct{})}
	d.cmd = exec.Command(bin, virtiofsdArgs(share)...)
	d.cmd.ExtraFiles = []*os.File{sock}
	d.cmd.Stderr = &d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start virtiofsd for %s: %w", share.HostPath, err)
	}
	v.daemons = append(v.daemons, d)
	return nil
}

// kill kills every daemon still running, with its sandbox child.
func (v *virtiofs) kill() {
	for _, d := range v.daemons {
		select {
		case <-d.done:
		default:
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

// stop kills the daemons and waits for them. A nil *virtiofs has none.
func (v *virtiofs) stop() {
	if v == nil {
		return
	}
	v.kill()
	<-v.done
}

// anyExited is closed when a daemon exits; nil (never ready) without any.
func (v *virtiofs) anyExited() <-chan struct{} {
	if v == nil {
		return nil
	}
	return v.exited
}

// report describes the daemons for QEMU's exit error, once all have exited:
// the first to exit when that is what ended QEMU (early), and any that wrote
// to stderr. It is "" when there is nothing to say.
func (v *virtiofs) report(early bool) string {
	if v == nil {
		return ""
	}
	<-v.done
	var b strings.Builder
	for _, d := range v.daemons {
		if d == v.first && early {
			fmt.Fprintf(&b, "\nvirtiofsd for %s exited while qemu ran (%v)%s", d.share.HostPath, d.err, d.stderr.String())
		} else if s := d.stderr.String(); s != "" {
			fmt.Fprintf(&b, "\nvirtiofsd for %s (%v)%s", d.share.HostPath, d.err, s)
		}
	}
	return b.String()
}
