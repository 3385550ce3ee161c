package machine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/cachefile"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// Snapshot boots (docs/snapshots.md). The first machine of a shape boots
// to the snapshot point (agentproto.SnapshotParam) with its memory in a
// file mapped shared; its device state is migrated to a state file and
// QEMU ends. That machine, and every later one of the shape, is restored
// from the state file with the memory file mapped privately, and is sent
// its configuration (agentproto.Restore). Anything wrong with a snapshot
// means a cold boot and a one-line note, never a machine restored from
// the wrong state.

// snapshotBase is the part of every shape key that is the run's: the
// kernel, the initramfs (which holds the agent, so the vmlab build) and
// QEMU, by content, hashed once.
type snapshotBase struct {
	once sync.Once
	key  string
	err  error
}

// snapshotFormat changes when what a snapshot directory holds does.
const snapshotFormat = 4

// readSnapshot reads the snapshot option asked for, else $VMLAB_SNAPSHOT,
// else on.
func readSnapshot(asked string, getenv func(string) string) (bool, error) {
	from := "snapshot"
	if asked == "" {
		asked, from = getenv("VMLAB_SNAPSHOT"), "VMLAB_SNAPSHOT"
	}
	switch asked {
	case "off":
		return false, nil
	case "", "on":
		return true, nil
	}
	return false, fmt.Errorf("prepare boot: %s: unknown value %q (want on or off)", from, asked)
}

func (b *Boot) snapshotBaseKey() (string, error) {
	b.snapBase.once.Do(func() {
		h := sha256.New()
		fmt.Fprintf(h, "vmlab snapshot %d protocol %d\n", snapshotFormat, agentproto.Version)
		for _, f := range []string{b.Kernel.Vmlinux, b.Initramfs, b.QEMU, b.Firmware} {
			if f == "" {
				continue
			}
			sum, err := b.digest(f)
			if err != nil {
				b.snapBase.err = fmt.Errorf("hash %s for the snapshot key: %w", f, err)
				return
			}
			fmt.Fprintf(h, "file %s %s\n", filepath.Base(f), sum)
		}
		b.snapBase.key = hex.EncodeToString(h.Sum(nil))
	})
	return b.snapBase.key, b.snapBase.err
}

// cacheNamed matches the names of the cache's kernels and initramfs
// archives, which carry the SHA-256 of what they are made from.
var cacheNamed = regexp.MustCompile(`^(?:vmlinux|initramfs)-([0-9a-f]{64})(?:\.cpio)?$`)

// digest identifies the file at path for the snapshot key: an entry of
// b's cache named by the sum of what it is made from is that sum (it is
// written once and never changed in place, but touched at every use, so
// the digest store could not keep its own sum); any other file is its
// SHA-256 (fileDigest).
func (b *Boot) digest(path string) (string, error) {
	if b.cache != "" && filepath.Dir(path) == b.cache {
		if m := cacheNamed.FindStringSubmatch(filepath.Base(path)); m != nil {
			return "named " + m[1], nil
		}
	}
	sum, err := fileDigest(snapshotDigests(b.snapshots), path)
	return "sha256 " + sum, err
}

// snapshotUnsupported says why the machine cannot be restored from a
// snapshot yet (docs/snapshots.md), or "".
func (m *Machine) snapshotUnsupported(q qemu.Config) string {
	switch {
	case m.cfg.Boot.FS != "9p":
		return "its files come over virtiofs (asked for by VMLAB_FS or BootOptions.FS), which QEMU 7.2 cannot migrate"
	case len(m.cfg.QEMUArgs) > 0:
		return "machines with extra QEMU arguments are not restored from snapshots"
	}
	for _, n := range q.NICs {
		if n.File == nil {
			return "only NICs on a lab's switches are restored from snapshots"
		}
	}
	return ""
}

// snapshotKey returns the key of q's shape: the run's (snapshotBaseKey),
// QEMU's command line without what is the machine's own (paths, file
// descriptors, MAC addresses, forwarded host ports, the boot
// configuration), the size of every
// disk (virtio_blk reads a disk's capacity before the snapshot point, so
// a restored machine would see the snapshot machine's), and under KVM the
// host's CPU (hostCPU: -cpu host hands the guest the host's model and
// flags, and its TSC's frequency). A machine image's content digest is
// in it too: the kernel reads the image's first blocks (its partition
// table) when virtio_blk probes it, before the point, and an image of the
// same size is no other shape by its command line.
//
// atPoint is the machine's disk when its snapshot boot mounts it before the
// point (snapshot_disk.go): such a snapshot is only for machines whose
// disk is new.
func (m *Machine) snapshotKey(q qemu.Config, atPoint *agentproto.RootDisk) (string, error) {
	base, err := m.cfg.Boot.snapshotBaseKey()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", base)
	if q.Initrd != "" && q.Initrd != m.cfg.Boot.Initramfs {
		// A display's initramfs (InitramfsFor) holds more modules.
		sum, err := m.cfg.Boot.digest(q.Initrd)
		if err != nil {
			return "", fmt.Errorf("snapshot key: %w", err)
		}
		fmt.Fprintf(h, "initramfs %s\n", sum)
	}
	q.Append, q.Kernel, q.Initrd, q.Dir, q.Name = strings.Join(keyKernelArgs(m.kernelArgs()), " "), "", "", "", ""
	args := q.Args()
	for i, a := range args {
		var keep []string
		for _, part := range splitOpts(a) {
			if k, v, ok := strings.Cut(part, "="); ok {
				switch k {
				case "path", "fd", "mac", "mem-path":
					continue
				case "hostfwd":
					// The host's ports are the machine's own: slirp
					// binds them from the command line, and nothing
					// reaches the guest through them before the point
					// (its NIC has no address yet).
					continue
				case "file":
					if i > 0 && args[i-1] == "-drive" {
						size, err := m.driveSize(q, strings.ReplaceAll(v, ",,", ","))
						if err != nil {
							return "", fmt.Errorf("snapshot key: %w", err)
						}
						keep = append(keep, fmt.Sprintf("size=%d", size))
					}
					continue
				}
			}
			keep = append(keep, part)
		}
		fmt.Fprintf(h, "%q\n", strings.Join(keep, ","))
	}
	if img := m.cfg.RootImage; img != nil {
		sum := img.SHA256
		if sum == "" {
			if sum, err = fileDigest(snapshotDigests(m.cfg.Boot.snapshots), img.Path); err != nil {
				return "", fmt.Errorf("snapshot key: image %s: %w", img.Name, err)
			}
		}
		fmt.Fprintf(h, "image %s sha256 %s\n", img.FSType, sum)
	}
	if q.Accel.Name == "kvm" {
		fmt.Fprintf(h, "host cpu %s\n", hostCPU())
	}
	if atPoint != nil {
		fmt.Fprintf(h, "disk at the point %q %q %q\n", atPoint.Serial, atPoint.FSType, atPoint.Options)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// driveSize is the size of the disk image at path, one of q's drives: the
// machine's own disk not made yet (diskImage's fresh one) has the size it
// will be made with.
func (m *Machine) driveSize(q qemu.Config, path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && q.Disk != nil && path == q.Disk.Path && m.diskMade {
		return int64(m.cfg.DiskMiB) << 20, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// keyKernelArgs is args as the snapshot key has them: the host TSC's
// frequency (tsc_early_khz, measured once per process, ~1 ppm apart from
// one process to the next) rounded to the MHz. Exact, two runs made two
// snapshots of one shape. A restored guest keeps the figure of the boot
// that took the snapshot, at most ~220 ppm from its own (its clock is set
// from the host's at the restore).
func keyKernelArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if v, ok := strings.CutPrefix(a, "tsc_early_khz="); ok {
			if khz, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[i] = fmt.Sprintf("tsc_mhz=%d", (khz+500)/1000)
			}
		}
	}
	return out
}

// splitOpts splits a QEMU option list at its commas, keeping a doubled
// comma (escape) inside its value.
func splitOpts(a string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(a); i++ {
		if a[i] != ',' {
			continue
		}
		if i+1 < len(a) && a[i+1] == ',' {
			i++
			continue
		}
		parts = append(parts, a[start:i])
		start = i + 1
	}
	return append(parts, a[start:])
}

// snapshotHeader is a snapshot directory's header.json.
type snapshotHeader struct {
	Key         string `json:"key"`
	State       int64  `json:"state_bytes"`
	StateSHA256 string `json:"state_sha256"`
	RAM         int64  `json:"ram_bytes"`
	RAMSHA256   string `json:"ram_sha256"`
	// Disk and DiskSHA256 are the disk file's, a snapshot whose machine's
	// disk was mounted before the point (snapshot_disk.go); 0 and "" else.
	Disk       int64    `json:"disk_bytes,omitempty"`
	DiskSHA256 string   `json:"disk_sha256,omitempty"`
	MACs       []string `json:"macs"` // the NICs' addresses in the saved device state
	Sum        string   `json:"sum"`  // headerSum of the rest
}

// Files of a snapshot directory. The memory file is also its lock file
// (cachefile.UseDir): a restored machine holds it for as long as its QEMU
// maps it, and an eviction or `vmlab cache clean` leaves it alone then.
const (
	snapHeader = "header.json"
	snapState  = "state"
	snapRAM    = "ram"
	snapDisk   = "disk"
)

// snapshotAppend is the kernel command line of a snapshot boot: the same
// for every machine of a shape, with no machine's configuration; atPoint
// is the disk it mounts before the point, if any.
func (m *Machine) snapshotAppend(atPoint *agentproto.RootDisk) string {
	args := append(m.kernelArgs(), agentproto.SnapshotParam+"=1")
	if atPoint != nil {
		args = append(args, agentproto.SnapshotDiskArg(*atPoint))
	}
	return strings.Join(args, " ")
}

// restoreFrom prepares q, a cold boot's configuration, to restore the
// machine from the snapshot of its shape, taking it first when there is
// none. It returns what to send the restored agent, or nil for a cold
// boot with q unchanged (the note says why). The caller closes what it
// returns once QEMU has exited (the memory file's lock). newDisk says the
// machine's disk was made empty for this boot: its snapshot then mounts
// the disk before the point, and the machine gets that disk's copy
// (snapshot_disk.go).
func (m *Machine) restoreFrom(ctx context.Context, q *qemu.Config, newDisk bool) *restoring {
	dir := m.cfg.Boot.snapshots
	if dir == "" {
		return nil
	}
	if why := m.snapshotUnsupported(*q); why != "" {
		m.logf("snapshot: cold boot: %s", why)
		return nil
	}
	boot, err := agentproto.ParseBootConfig(q.Append)
	if err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	var atPoint *agentproto.RootDisk
	if newDisk && boot.Disk != nil && q.Disk != nil {
		atPoint = boot.Disk
	}
	key, err := m.snapshotKey(*q, atPoint)
	if err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	r := &restoring{Restore: agentproto.Restore{Boot: boot, Seed: make([]byte, 64)}, dir: filepath.Join(dir, key), key: key}
	if atPoint != nil {
		r.disk = q.Disk.Path
	}
	take := *q
	take.Append = m.snapshotAppend(atPoint)
	if _, err := rand.Read(r.Seed); err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	h, err := r.use(ctx, m, take)
	if err != nil {
		m.logf("snapshot %s: cold boot: %v", key, err)
		m.console.newBoot() // what a failed take's guest said is not the cold boot's
		return nil
	}
	if len(h.MACs) != len(q.NICs) {
		// The key holds the NICs: the header is wrong.
		r.setAside(m.logf)
		r.Close()
		m.logf("snapshot %s: cold boot: it has %d NICs, the machine %d", key, len(h.MACs), len(q.NICs))
		return nil
	}
	for i, n := range q.NICs {
		if !strings.EqualFold(h.MACs[i], n.MAC) {
			r.MACs = append(r.MACs, agentproto.MACChange{From: h.MACs[i], To: n.MAC})
		}
	}
	q.Append = take.Append
	if r.kept != nil {
		return r // q is what the kept QEMU runs, but for its memory
	}
	q.RAM = &qemu.RAMFile{Path: filepath.Join(r.dir, snapRAM)}
	q.Incoming, q.IncomingState = true, r.state
	r.uri = q.IncomingURI()
	return r
}

// use takes the snapshot's lock, taking the snapshot first when there is
// none (q is the snapshot boot's configuration; the machine then goes on
// in the QEMU it took it of, r.kept), checks it, and gives the machine its
// disk when the snapshot has one and it is restored from it. A snapshot
// that fails its check is set aside.
func (r *restoring) use(ctx context.Context, m *Machine, q qemu.Config) (h snapshotHeader, err error) {
	lock, err := cachefile.UseDir(r.dir, snapRAM)
	if errors.Is(err, os.ErrNotExist) {
		if r.disk != "" {
			// The take mounts the machine's fresh disk at the point.
			if err := m.makeDisk(r.disk); err != nil {
				return h, err
			}
		}
		if _, r.kept, err = m.takeSnapshot(ctx, q, filepath.Dir(r.dir), r.key, r.disk); err != nil {
			return h, err
		}
		defer func() {
			if err != nil {
				r.kept.Close()
				r.kept = nil
			}
		}()
		lock, err = cachefile.UseDir(r.dir, snapRAM)
	}
	if err != nil {
		return h, err
	}
	r.lock = lock
	if r.ram, err = lock.Stat(); err != nil {
		r.Close()
		return h, err
	}
	if err := roomToRestore(r.dir, r.ram); err != nil {
		r.Close()
		return h, err
	}
	if h, r.state, err = checkSnapshot(r.dir, r.key); err != nil {
		r.setAside(m.logf)
		r.Close()
		return h, err
	}
	if r.disk != "" && r.kept == nil { // the kept QEMU's disk is the one saved
		if err := giveDisk(r.dir, r.disk, h); err != nil {
			r.setAside(m.logf)
			r.Close()
			return h, err
		}
	}
	return h, nil
}

// tmpfsMagic is statfs(2)'s type of a tmpfs.
const tmpfsMagic = 0x01021994

// statfs is unix.Statfs; tests replace it.
var statfs = unix.Statfs

// roomToRestore refuses a restore from a memory file, ram, in dir on a
// tmpfs without room for the file's holes. A guest's first read of a page
// the file does not hold makes a tmpfs allocate it, even under QEMU's
// private mapping, and with the tmpfs full QEMU dies of SIGBUS in the
// middle of a test (seen on purpose). On other file systems such a read
// takes page cache, not room on the disk.
func roomToRestore(dir string, ram os.FileInfo) error {
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil || st.Type != tmpfsMagic {
		return nil
	}
	holes := ram.Size()
	if sys, ok := ram.Sys().(*syscall.Stat_t); ok {
		holes -= sys.Blocks * 512
	}
	if free := int64(st.Bavail) * st.Bsize; free < holes {
		return fmt.Errorf("its memory file is on a tmpfs with %d MiB free, and a guest can make it take %d MiB more (its holes): free some, or keep the cache on a disk (XDG_CACHE_HOME)", free>>20, holes>>20)
	}
	return nil
}

// restoring is what restoreFrom found: the snapshot's directory, its
// memory file's lock, the state file to load and what to send the agent.
type restoring struct {
	agentproto.Restore
	kept     *keptTake // the QEMU the snapshot was just taken of; nil: restore in a new one
	dir, key string
	disk     string      // the machine's disk image, given the snapshot's; "": its own
	lock     *os.File    // the memory file, locked shared
	ram      os.FileInfo // the memory file's
	state    *os.File    // the state file, checked (checkSnapshot)
	uri      string      // where QEMU reads it (qemu.Config.IncomingURI)
	closed   sync.Once
}

// keptQEMU returns the QEMU the machine took the snapshot in and goes on
// in, or nil: it is restored in a new one (or r is nil: a cold boot).
func (r *restoring) keptQEMU() *keptTake {
	if r == nil {
		return nil
	}
	return r.kept
}

// Close releases the snapshot's lock and ends the kept QEMU if there is
// one: the machine's QEMU has exited, or the machine will not use it. It
// may be called more than once, from any goroutine.
func (r *restoring) Close() {
	r.closed.Do(func() {
		r.kept.Close()
		if r.lock != nil {
			r.lock.Close()
		}
		if r.state != nil {
			r.state.Close()
		}
	})
}

// setAside renames a snapshot that failed (its check, or a restore) to
// .bad-KEY-*, which the next trim removes, so that the next machine of
// the shape takes it again. Only the directory this machine locked is
// renamed: another run may have taken a new one meanwhile.
func (r *restoring) setAside(logf func(string, ...any)) {
	if r.ram == nil || !sameFile(r.ram, filepath.Join(r.dir, snapRAM)) {
		return
	}
	if err := setAsideDir(r.dir, r.key); err != nil {
		logf("snapshot %s: set it aside: %v", r.key, err)
	}
}

// setAsideDir renames the snapshot directory dir of key to .bad-KEY-*.
func setAsideDir(dir, key string) error {
	var rnd [4]byte
	rand.Read(rnd[:])
	return os.Rename(dir, filepath.Join(filepath.Dir(dir), fmt.Sprintf(".bad-%s-%x", key, rnd)))
}

// errLoadFailed says QEMU failed to load a snapshot's state: it exits
// then, its reason on its stderr ("load of migration failed: ...").
var errLoadFailed = errors.New("the load failed")

// migrationCaps are the migration capabilities both ends set: the memory
// file is not in the state (x-ignore-shared), and the source tells when
// the migration ends (events).
var migrationCaps = map[string]any{"capabilities": []map[string]any{
	{"capability": "x-ignore-shared", "state": true}, {"capability": "events", "state": true}}}

// load has QEMU, started with -incoming defer, load the state and run
// the guest on (or runs the kept QEMU on), and once the guest runs sends
// the agent its configuration with the host's clock of that moment.
func (r *restoring) load(ctx context.Context, qc *qmp.Client, agent io.Writer) error {
	if r.kept != nil {
		if err := r.kept.resume(ctx); err != nil {
			return err
		}
		return r.send(agent)
	}
	if _, err := qc.Execute(ctx, "migrate-set-capabilities", migrationCaps); err != nil {
		return fmt.Errorf("set migration capabilities: %w", err)
	}
	sub := qc.Subscribe("MIGRATION")
	defer sub.Close()
	if _, err := qc.Execute(ctx, "migrate-incoming", map[string]any{"uri": r.uri}); err != nil {
		return fmt.Errorf("load the state: %w", err)
	}
	if err := awaitMigration(ctx, qc, sub); err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", errLoadFailed, err)
		}
		return fmt.Errorf("load the state: %w", err)
	}
	return r.send(agent)
}

// send sends the agent the Restore frame, stamped with the host's clock.
func (r *restoring) send(agent io.Writer) error {
	r.UnixNano = time.Now().UnixNano()
	if err := agentproto.NewWriter(agent).WriteFrame(agentproto.TRestore, 0, agentproto.Encode(r.Restore)); err != nil {
		return fmt.Errorf("send the restored machine its configuration: %w", err)
	}
	return nil
}

// awaitMigration waits for sub's MIGRATION event saying the migration
// completed (with the events capability, both ends send them).
func awaitMigration(ctx context.Context, qc *qmp.Client, sub *qmp.Subscription) error {
	for {
		ev, err := sub.Wait(ctx, "MIGRATION")
		if err != nil {
			return fmt.Errorf("wait for the migration: %w", err)
		}
		var st struct{ Status string }
		json.Unmarshal(ev.Data, &st)
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			if raw, err := qc.Execute(ctx, "query-migrate", nil); err == nil && len(raw) > 0 {
				return fmt.Errorf("migration %s: %s", st.Status, raw)
			}
			return fmt.Errorf("migration %s", st.Status)
		}
	}
}

// snapshotError is the error of a snapshot's take or restore (what) that
// failed with err while proc's QEMU ran, as a boot's are: a DownError
// when QEMU exited, a TimeoutError when the boot's deadline passed, each
// with the console's last lines and naming the machine. The machine then
// boots cold, and its note shows it.
func (m *Machine) snapshotError(what string, proc *qemu.Process, err error) error {
	exited := isDone(proc) || (brokeByExit(err) || errors.Is(err, errLoadFailed)) && m.awaitExit(proc)
	m.console.Flush()
	switch {
	case exited:
		return m.downBecause(what, fmt.Errorf("%w; %v", err, proc.Err()), m.console.failure(proc.ExitedCleanly()))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return &TimeoutError{Machine: m.cfg.Name, What: what, Timeout: m.bootTimeout(), Console: m.console.ShownTail(consoleTail)}
	}
	return errors.New(withTails(fmt.Sprintf("%s: %s: %v", m.cfg.Name, what, err), "", m.console.ShownTail(consoleTail)))
}
