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
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
const snapshotFormat = 2

// readSnapshot reads the snapshot option asked for, else $VMLAB_SNAPSHOT.
func readSnapshot(asked string, getenv func(string) string) (bool, error) {
	from := "snapshot"
	if asked == "" {
		asked, from = getenv("VMLAB_SNAPSHOT"), "VMLAB_SNAPSHOT"
	}
	switch asked {
	case "", "off":
		return false, nil
	case "on":
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
			if err := hashFile(h, f); err != nil {
				b.snapBase.err = err
				return
			}
		}
		b.snapBase.key = hex.EncodeToString(h.Sum(nil))
	})
	return b.snapBase.key, b.snapBase.err
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash %s for the snapshot key: %w", path, err)
	}
	defer f.Close()
	fmt.Fprintf(w, "file %s\n", filepath.Base(path))
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("hash %s for the snapshot key: %w", path, err)
	}
	return nil
}

// snapshotUnsupported says why the machine cannot be restored from a
// snapshot yet (docs/snapshots.md), or "".
func (m *Machine) snapshotUnsupported(q qemu.Config) string {
	switch {
	case m.cfg.Boot.FS != "9p":
		return "its files come over virtiofs, which QEMU 7.2 cannot migrate (use -fs 9p)"
	case m.cfg.Systemd():
		return "systemd mode is not restored from snapshots yet"
	case m.cfg.RootImage != nil:
		return "machine images are not restored from snapshots yet"
	case m.cfg.Display:
		return "machines with a display are not restored from snapshots yet"
	case m.cfg.Coverage.Dir != "":
		return "machines that collect coverage are not restored from snapshots yet"
	case m.cfg.DiskImage != "":
		return "machines whose disk is kept are not restored from snapshots yet"
	case len(m.cfg.QEMUArgs) > 0:
		return "machines with extra QEMU arguments are not restored from snapshots"
	case q.UserNet != nil:
		return "machines with forwarded ports are not restored from snapshots yet"
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
// descriptors, MAC addresses, the boot configuration), the size of every
// disk (virtio_blk reads a disk's capacity before the snapshot point, so
// a restored machine would see the snapshot machine's), and under KVM the
// host's CPU (hostCPU: -cpu host hands the guest the host's model and
// flags, and its TSC's frequency).
func (m *Machine) snapshotKey(q qemu.Config) (string, error) {
	base, err := m.cfg.Boot.snapshotBaseKey()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", base)
	q.Append, q.Kernel, q.Initrd, q.Dir, q.Name = strings.Join(m.kernelArgs(), " "), "", "", "", ""
	args := q.Args()
	for i, a := range args {
		var keep []string
		for _, part := range splitOpts(a) {
			if k, v, ok := strings.Cut(part, "="); ok {
				switch k {
				case "path", "fd", "mac", "mem-path":
					continue
				case "file":
					if i > 0 && args[i-1] == "-drive" {
						fi, err := os.Stat(strings.ReplaceAll(v, ",,", ","))
						if err != nil {
							return "", fmt.Errorf("snapshot key: %w", err)
						}
						keep = append(keep, fmt.Sprintf("size=%d", fi.Size()))
					}
					continue
				}
			}
			keep = append(keep, part)
		}
		fmt.Fprintf(h, "%q\n", strings.Join(keep, ","))
	}
	if q.Accel.Name == "kvm" {
		fmt.Fprintf(h, "host cpu %s\n", hostCPU())
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
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
	Key         string   `json:"key"`
	State       int64    `json:"state_bytes"`
	StateSHA256 string   `json:"state_sha256"`
	RAM         int64    `json:"ram_bytes"`
	RAMSHA256   string   `json:"ram_sha256"`
	MACs        []string `json:"macs"` // the NICs' addresses in the saved device state
}

// Files of a snapshot directory. The memory file is also its lock file
// (cachefile.UseDir): a restored machine holds it for as long as its QEMU
// maps it, and an eviction or `vmlab cache clean` leaves it alone then.
const (
	snapHeader = "header.json"
	snapState  = "state"
	snapRAM    = "ram"
)

// errNoSnapshot says there is no snapshot of the shape yet.
var errNoSnapshot = errors.New("no snapshot")

// checkSnapshot reads dir's header and checks the files against it. The
// memory file's hash is checked once per process (checkRAM).
func checkSnapshot(dir, key string) (snapshotHeader, error) {
	var h snapshotHeader
	b, err := os.ReadFile(filepath.Join(dir, snapHeader))
	if errors.Is(err, os.ErrNotExist) {
		return h, errNoSnapshot
	}
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("read %s: %w", snapHeader, err)
	}
	if h.Key != key {
		return h, fmt.Errorf("its header is for shape %s", h.Key)
	}
	ram, err := os.Stat(filepath.Join(dir, snapRAM))
	if err != nil {
		return h, err
	}
	if ram.Size() != h.RAM {
		return h, fmt.Errorf("its memory file has %d bytes, want %d", ram.Size(), h.RAM)
	}
	sum, n, err := sumFile(filepath.Join(dir, snapState))
	if err != nil {
		return h, err
	}
	if n != h.State || sum != h.StateSHA256 {
		return h, fmt.Errorf("its state file (%d bytes, sha256 %.12s) is not the one saved (%d bytes, sha256 %.12s)", n, sum, h.State, h.StateSHA256)
	}
	if err := checkRAM(filepath.Join(dir, snapRAM), h.RAMSHA256); err != nil {
		return h, err
	}
	return h, nil
}

// ramChecks are this process's verdicts on memory files, by path, inode,
// size and mtime: hashing 512 MiB takes ~0.3 s, more than a restore, so
// it is done once per process and snapshot, not at every restore.
var ramChecks struct {
	sync.Mutex
	m map[string]*ramCheck
}

type ramCheck struct {
	once sync.Once
	err  error
}

func ramCheckKey(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d %d.%d", path, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec), nil
}

// checkRAM checks that the memory file at path hashes to want, once per
// process for one file.
func checkRAM(path, want string) error {
	k, err := ramCheckKey(path)
	if err != nil {
		return err
	}
	ramChecks.Lock()
	if ramChecks.m == nil {
		ramChecks.m = make(map[string]*ramCheck)
	}
	c := ramChecks.m[k]
	if c == nil {
		c = &ramCheck{}
		ramChecks.m[k] = c
	}
	ramChecks.Unlock()
	c.once.Do(func() {
		sum, _, err := sumFile(path)
		switch {
		case err != nil:
			c.err = err
		case sum != want:
			c.err = fmt.Errorf("its memory file (sha256 %.12s) is not the one saved (sha256 %.12s)", sum, want)
		}
	})
	return c.err
}

// checkedRAM records that the memory file at path, just written and
// hashed, is whole.
func checkedRAM(path string) {
	k, err := ramCheckKey(path)
	if err != nil {
		return
	}
	c := &ramCheck{}
	c.once.Do(func() {})
	ramChecks.Lock()
	if ramChecks.m == nil {
		ramChecks.m = make(map[string]*ramCheck)
	}
	ramChecks.m[k] = c
	ramChecks.Unlock()
}

func sumFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// snapshotAppend is the kernel command line of a snapshot boot: the same
// for every machine of a shape, with no machine's configuration.
func (m *Machine) snapshotAppend() string {
	return strings.Join(append(m.kernelArgs(), agentproto.SnapshotParam+"=1"), " ")
}

// restoreFrom prepares q, a cold boot's configuration, to restore the
// machine from the snapshot of its shape, taking it first when there is
// none. It returns what to send the restored agent, or nil for a cold
// boot with q unchanged (the note says why). The caller closes what it
// returns once QEMU has exited (the memory file's lock).
func (m *Machine) restoreFrom(ctx context.Context, q *qemu.Config) *restoring {
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
	key, err := m.snapshotKey(*q)
	if err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	r := &restoring{Restore: agentproto.Restore{Boot: boot, Seed: make([]byte, 64)}, dir: filepath.Join(dir, key), key: key}
	if _, err := rand.Read(r.Seed); err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	h, err := r.use(ctx, m, *q)
	if err != nil {
		m.logf("snapshot %s: cold boot: %v", key, err)
		return nil
	}
	if len(h.MACs) != len(q.NICs) {
		r.Close()
		m.logf("snapshot %s: cold boot: it has %d NICs, the machine %d", key, len(h.MACs), len(q.NICs))
		return nil
	}
	for i, n := range q.NICs {
		if !strings.EqualFold(h.MACs[i], n.MAC) {
			r.MACs = append(r.MACs, agentproto.MACChange{From: h.MACs[i], To: n.MAC})
		}
	}
	q.Append = m.snapshotAppend()
	q.RAM = &qemu.RAMFile{Path: filepath.Join(r.dir, snapRAM)}
	q.Incoming = true
	r.state = filepath.Join(r.dir, snapState)
	return r
}

// use takes the snapshot's lock, taking the snapshot first when there is
// none, and checks it. A snapshot that fails its check is set aside.
func (r *restoring) use(ctx context.Context, m *Machine, q qemu.Config) (snapshotHeader, error) {
	var h snapshotHeader
	lock, err := cachefile.UseDir(r.dir, snapRAM)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := m.takeSnapshot(ctx, q, filepath.Dir(r.dir), r.key); err != nil {
			return h, err
		}
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
	if h, err = checkSnapshot(r.dir, r.key); err != nil {
		r.setAside(m.logf)
		r.Close()
		return h, err
	}
	return h, nil
}

// restoring is what restoreFrom found: the snapshot's directory, its
// memory file's lock, the state file to load and what to send the agent.
type restoring struct {
	agentproto.Restore
	dir, key string
	lock     *os.File    // the memory file, locked shared
	ram      os.FileInfo // the memory file's
	state    string
	closed   sync.Once
}

// Close releases the snapshot's lock: its QEMU has exited. It may be
// called more than once, from any goroutine.
func (r *restoring) Close() {
	r.closed.Do(func() {
		if r.lock != nil {
			r.lock.Close()
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

// migrationCaps are the migration capabilities both ends set: the memory
// file is not in the state (x-ignore-shared), and the source tells when
// the migration ends (events).
var migrationCaps = map[string]any{"capabilities": []map[string]any{
	{"capability": "x-ignore-shared", "state": true}, {"capability": "events", "state": true}}}

// load has QEMU, started with -incoming defer, load the state and run
// the guest on, and once the state is loaded sends the agent its
// configuration with the host's clock of that moment.
func (r *restoring) load(ctx context.Context, qc *qmp.Client, agent io.Writer) error {
	if _, err := qc.Execute(ctx, "migrate-set-capabilities", migrationCaps); err != nil {
		return fmt.Errorf("restore from the snapshot: set migration capabilities: %w", err)
	}
	sub := qc.Subscribe("MIGRATION")
	defer sub.Close()
	// QEMU runs the command with /bin/sh -c; the path is quoted for it.
	uri := "exec:cat '" + strings.ReplaceAll(r.state, "'", `'\''`) + "'"
	if _, err := qc.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}); err != nil {
		return fmt.Errorf("restore from the snapshot: %w", err)
	}
	if err := awaitMigration(ctx, qc, sub); err != nil {
		return fmt.Errorf("restore from the snapshot: %w", err)
	}
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
			raw, _ := qc.Execute(ctx, "query-migrate", nil)
			return fmt.Errorf("migration %s: %s", st.Status, raw)
		}
	}
}

// errSnapshotBusy says another machine or run is taking the snapshot.
var errSnapshotBusy = errors.New("another machine or run is taking this snapshot")

// takeSnapshot boots q to the snapshot point and saves the snapshot in
// dir/key, atomically: it is made in a temporary directory, synced, and
// renamed into place, under a lock that a second run finds taken (it
// boots cold). Then it trims the snapshot cache (TrimSnapshots).
func (m *Machine) takeSnapshot(ctx context.Context, q qemu.Config, dir, key string) (snapshotHeader, error) {
	var h snapshotHeader
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return h, err
	}
	lockPath := filepath.Join(dir, key+".lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return h, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return h, errSnapshotBusy
	}
	if a, err1 := lock.Stat(); err1 != nil || !sameFile(a, lockPath) {
		return h, errSnapshotBusy // a trim removed the lock file meanwhile
	}
	final := filepath.Join(dir, key)
	if h, err := checkSnapshot(final, key); err == nil {
		return h, nil // another run made it meanwhile
	}
	if _, err := os.Lstat(final); err == nil {
		// A directory that is no whole snapshot (no memory file, or one
		// that fails its check): nobody can use it, and it is in the way.
		if err := setAsideDir(final, key); err != nil {
			return h, err
		}
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+key+"-")
	if err != nil {
		return h, err
	}
	defer os.RemoveAll(tmp)
	// The memory file is the directory's lock (cachefile.UseDir): held
	// while it is made, a trim leaves it.
	ram, err := os.OpenFile(filepath.Join(tmp, snapRAM), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return h, err
	}
	defer ram.Close()
	if err := unix.Flock(int(ram.Fd()), unix.LOCK_SH); err != nil {
		return h, err
	}
	start := time.Now()
	if h, err = m.saveSnapshot(ctx, q, tmp); err != nil {
		return h, fmt.Errorf("take snapshot: %w", err)
	}
	h.Key = key
	if err := writeSnapshot(tmp, ram, &h); err != nil {
		return h, fmt.Errorf("take snapshot: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return h, err
	}
	syncDir(dir)
	checkedRAM(filepath.Join(final, snapRAM))
	m.logf("snapshot %s taken in %.2fs", key, time.Since(start).Seconds())
	if removed, _ := TrimSnapshots(dir, SnapshotLimits); len(removed) > 0 {
		m.logf("snapshot cache: removed %d snapshots, %.1f MiB", len(removed), float64(cachefile.Total(removed))/(1<<20))
	}
	return h, nil
}

// writeSnapshot syncs tmp's memory file, hashes it, writes the header and
// syncs it and the directory: a crash after the rename into place leaves
// a whole snapshot, not an empty file under a good header.
func writeSnapshot(tmp string, ram *os.File, h *snapshotHeader) error {
	if err := ram.Sync(); err != nil {
		return fmt.Errorf("sync the memory file: %w", err)
	}
	var err error
	if h.RAMSHA256, h.RAM, err = sumFile(ram.Name()); err != nil {
		return err
	}
	b, _ := json.Marshal(h)
	f, err := os.Create(filepath.Join(tmp, snapHeader))
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(tmp)
}

// syncDir syncs a directory's entries.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func sameFile(a os.FileInfo, path string) bool {
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// saveSnapshot boots q to the snapshot point with its memory in tmp's
// memory file, migrates the device state to tmp's state file, and ends
// QEMU.
func (m *Machine) saveSnapshot(ctx context.Context, q qemu.Config, tmp string) (snapshotHeader, error) {
	var h snapshotHeader
	q.Append = m.snapshotAppend()
	q.RAM = &qemu.RAMFile{Path: filepath.Join(tmp, snapRAM), Shared: true}
	ctx, cancel := context.WithTimeout(ctx, m.bootTimeout())
	defer cancel()
	proc, err := qemu.Start(ctx, q, m.console)
	if err != nil {
		return h, err
	}
	defer func() {
		proc.Kill()
		<-proc.Done()
	}()
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	qc, err := qmp.NewClient(ctx, proc.QMP)
	if err != nil {
		return h, fmt.Errorf("connect to qmp: %w", err)
	}
	defer qc.Close()
	if err := awaitSnapshotPoint(ctx, proc.Agent); err != nil {
		return h, err
	}
	// QEMU connects to sock and writes the state; the file is whole when
	// QEMU closes the connection.
	sock := filepath.Join(q.Dir, "migrate.sock")
	os.Remove(sock)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return h, err
	}
	defer l.Close()
	copied := make(chan error, 1)
	go func() { copied <- receiveState(l, filepath.Join(tmp, snapState)) }()
	if _, err := qc.Execute(ctx, "migrate-set-capabilities", migrationCaps); err != nil {
		return h, fmt.Errorf("set migration capabilities: %w", err)
	}
	sub := qc.Subscribe("MIGRATION")
	defer sub.Close()
	if _, err := qc.Execute(ctx, "migrate", map[string]any{"uri": "unix:" + sock}); err != nil {
		return h, fmt.Errorf("migrate: %w", err)
	}
	if err := awaitMigration(ctx, qc, sub); err != nil {
		return h, err
	}
	select {
	case err := <-copied:
		if err != nil {
			return h, err
		}
	case <-ctx.Done():
		return h, fmt.Errorf("save the state: %w", ctx.Err())
	}
	for _, n := range q.NICs {
		h.MACs = append(h.MACs, n.MAC)
	}
	if h.StateSHA256, h.State, err = sumFile(filepath.Join(tmp, snapState)); err != nil {
		return h, err
	}
	return h, nil
}

// awaitSnapshotPoint reads the agent's Snapshot frame.
func awaitSnapshotPoint(ctx context.Context, conn net.Conn) error {
	if d, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(d)
		defer conn.SetReadDeadline(time.Time{})
	}
	f, err := agentproto.NewReader(conn).ReadFrame()
	if err != nil {
		return fmt.Errorf("wait for the agent at the snapshot point: %w", err)
	}
	var p agentproto.SnapshotPoint
	if f.Type != agentproto.TSnapshot || json.Unmarshal(f.Payload, &p) != nil {
		return fmt.Errorf("wait for the agent at the snapshot point: got a %v frame", f.Type)
	}
	if p.Version != agentproto.Version {
		return fmt.Errorf("the agent speaks protocol %d, want %d: the initramfs is stale", p.Version, agentproto.Version)
	}
	return nil
}

// receiveState writes what QEMU's one connection to l sends to path.
func receiveState(l *net.UnixListener, path string) error {
	c, err := l.Accept()
	if err != nil {
		return fmt.Errorf("accept the migration: %w", err)
	}
	defer c.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, c); err != nil {
		f.Close()
		return fmt.Errorf("save the state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
