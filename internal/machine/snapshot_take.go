package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/cachefile"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/qemu/qmp"
)

// errSnapshotBusy says another machine or run is taking the snapshot.
var errSnapshotBusy = errors.New("another machine or run is taking this snapshot")

// takeSnapshot boots q to the snapshot point and saves the snapshot in
// dir/key, atomically: it is made in a temporary directory, synced, and
// renamed into place, under a lock that a second run finds taken (it
// boots cold). Then it trims the snapshot cache (TrimSnapshots). disk is
// the machine's disk image when q's boot mounts it before the point: the
// snapshot keeps a copy of it.
//
// The QEMU it took the snapshot of is kept, paused at the point (nil when
// another run made the snapshot meanwhile): the machine goes on in it
// (keptTake) rather than being restored from the snapshot it has just
// written. Its memory is its own (takeMemory), shared with no other.
func (m *Machine) takeSnapshot(ctx context.Context, q qemu.Config, dir, key, disk string) (h snapshotHeader, kept *keptTake, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return h, nil, err
	}
	lockPath := filepath.Join(dir, key+".lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return h, nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return h, nil, errSnapshotBusy
	}
	if a, err1 := lock.Stat(); err1 != nil || !sameFile(a, lockPath) {
		return h, nil, errSnapshotBusy // a trim removed the lock file meanwhile
	}
	final := filepath.Join(dir, key)
	if h, state, err := checkSnapshot(final, key); err == nil {
		state.Close()
		return h, nil, nil // another run made it meanwhile
	}
	if _, err := os.Lstat(final); err == nil {
		// A directory that is no whole snapshot (no memory file, or one
		// that fails its check): nobody can use it, and it is in the way.
		if err := setAsideDir(final, key); err != nil {
			return h, nil, err
		}
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+key+"-")
	if err != nil {
		return h, nil, err
	}
	defer os.RemoveAll(tmp)
	// The memory file is the directory's lock (cachefile.UseDir): held
	// while it is made, a trim leaves it.
	ram, err := os.OpenFile(filepath.Join(tmp, snapRAM), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return h, nil, err
	}
	defer ram.Close()
	if err := unix.Flock(int(ram.Fd()), unix.LOCK_SH); err != nil {
		return h, nil, err
	}
	start := time.Now()
	mem, err := takeMemory()
	if err != nil {
		return h, nil, fmt.Errorf("take snapshot: %w", err)
	}
	defer mem.Close()
	h, paused, err := m.saveSnapshot(ctx, q, tmp, mem)
	if err != nil {
		return h, nil, err // it names the machine and the take
	}
	defer func() {
		if err != nil {
			paused.Close() // the return statement has set kept to nil
		}
	}()
	h.Key = key
	// QEMU is paused: the guest writes nothing to its memory or disk
	// until the machine goes on (keptTake.resume).
	if h.RAMSHA256, h.RAM, err = writeMemory(ram, mem); err != nil {
		return h, nil, fmt.Errorf("take snapshot: %w", err)
	}
	mem.Close() // QEMU opened its own descriptor
	if disk != "" {
		if err := saveDisk(tmp, disk, &h); err != nil {
			return h, nil, fmt.Errorf("take snapshot: %w", err)
		}
	}
	if err := writeSnapshot(tmp, ram, &h); err != nil {
		return h, nil, fmt.Errorf("take snapshot: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return h, nil, err
	}
	syncDir(dir)
	checkedSparse(snapshotDigests(dir), filepath.Join(final, snapRAM), h.RAMSHA256)
	if disk != "" {
		checkedSparse(snapshotDigests(dir), filepath.Join(final, snapDisk), h.DiskSHA256)
	}
	m.logf("snapshot %s taken in %.2fs", key, time.Since(start).Seconds())
	if removed, _ := TrimSnapshots(dir, SnapshotLimits); len(removed) > 0 {
		m.logf("snapshot cache: removed %d snapshots, %.1f MiB", len(removed), float64(cachefile.Total(removed))/(1<<20))
	}
	return h, paused, nil
}

// keptTake is the QEMU a snapshot was taken of, paused at the snapshot
// point once its state was saved, with its QMP client. The machine that
// took the snapshot goes on in it, sent its Restore frame as a machine
// restored from the snapshot is: the guest is at the same point in either,
// and this saves the restore's QEMU start and load (0.7-0.8 s under TCG).
type keptTake struct {
	proc *qemu.Process
	qmp  *qmp.Client
}

// Close ends the kept QEMU. It may be called on a nil keptTake.
func (k *keptTake) Close() {
	if k == nil {
		return
	}
	k.qmp.Close()
	k.proc.Kill()
	<-k.proc.Done()
}

// resume runs the guest on from the snapshot point. After a migration
// QEMU's block devices are inactive; cont takes them back.
func (k *keptTake) resume(ctx context.Context) error {
	if _, err := k.qmp.Execute(ctx, "cont", nil); err != nil {
		return fmt.Errorf("run on from the snapshot point: %w", err)
	}
	return nil
}

// takeMemory returns the memory of the machine a snapshot is taken of: a
// file in memory (memfd_create(2)), which QEMU maps shared and which stays
// the machine's memory once it runs on (keptTake). On a disk's file system
// the guest's first write to each page of a shared mapping has the file
// system allocate a block for it: with the file there, the boot to the
// snapshot point took 3.5-3.6 s here against 2.6-3.0 s on a tmpfs, and
// the whole take 3.85-4.1 s against 3.0-3.25 s in a memfd. copyPages
// then writes what the guest wrote to the snapshot's file.
func takeMemory() (*os.File, error) {
	fd, err := unix.MemfdCreate("vmlab-snapshot-memory", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), "vmlab-snapshot-memory"), nil
}

// memPath is the path QEMU opens mem, this process's file, by.
func memPath(mem *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), mem.Fd())
}

// writeMemory is copyPages; a test makes it fail, to see a failed take's
// QEMU ended.
var writeMemory = copyPages

// writeSnapshot syncs tmp's memory file (h has its sum), writes the header
// and syncs it and the directory: a crash after the rename into place
// leaves a whole snapshot, not an empty file under a good header.
func writeSnapshot(tmp string, ram *os.File, h *snapshotHeader) error {
	if err := ram.Sync(); err != nil {
		return fmt.Errorf("sync the memory file: %w", err)
	}
	h.Sum = headerSum(*h)
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

// saveSnapshot boots q, a snapshot boot, to the snapshot point with its
// memory in mem, migrates the device state to tmp's state file, and
// returns QEMU paused there, or ends it when it fails.
func (m *Machine) saveSnapshot(ctx context.Context, q qemu.Config, tmp string, mem *os.File) (h snapshotHeader, kept *keptTake, err error) {
	q.RAM = &qemu.RAMFile{Path: memPath(mem), Shared: true}
	ctx, cancel := context.WithTimeout(ctx, m.bootTimeout())
	defer cancel()
	proc, err := qemu.Start(ctx, q, m.console)
	if err != nil {
		return h, nil, err
	}
	var qc *qmp.Client
	defer func() {
		if err == nil {
			return
		}
		// Before the kill: the error says whether QEMU exited.
		err = m.snapshotError("take snapshot: boot to the snapshot point and save it", proc, err)
		if qc != nil {
			qc.Close()
		}
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
	if qc, err = qmp.NewClient(ctx, proc.QMP); err != nil {
		qc = nil
		return h, nil, fmt.Errorf("connect to qmp: %w", err)
	}
	if err := awaitSnapshotPoint(ctx, proc.Agent); err != nil {
		return h, nil, err
	}
	// QEMU connects to sock and writes the state; the file is whole when
	// QEMU closes the connection.
	sock := filepath.Join(q.Dir, "migrate.sock")
	os.Remove(sock)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return h, nil, err
	}
	defer l.Close()
	copied := make(chan error, 1)
	go func() { copied <- receiveState(l, filepath.Join(tmp, snapState)) }()
	if _, err := qc.Execute(ctx, "migrate-set-capabilities", migrationCaps); err != nil {
		return h, nil, fmt.Errorf("set migration capabilities: %w", err)
	}
	sub := qc.Subscribe("MIGRATION")
	defer sub.Close()
	if _, err := qc.Execute(ctx, "migrate", map[string]any{"uri": "unix:" + sock}); err != nil {
		return h, nil, fmt.Errorf("migrate: %w", err)
	}
	if err := awaitMigration(ctx, qc, sub); err != nil {
		return h, nil, err
	}
	select {
	case err := <-copied:
		if err != nil {
			return h, nil, err
		}
	case <-ctx.Done():
		return h, nil, fmt.Errorf("save the state: %w", ctx.Err())
	}
	for _, n := range q.NICs {
		h.MACs = append(h.MACs, n.MAC)
	}
	if h.StateSHA256, h.State, err = sumFile(filepath.Join(tmp, snapState)); err != nil {
		return h, nil, err
	}
	return h, &keptTake{proc: proc, qmp: qc}, nil
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
