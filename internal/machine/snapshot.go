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
const snapshotFormat = 1

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

// snapshotKey returns the key of q's shape: the run's (snapshotBaseKey)
// and QEMU's command line without what is the machine's own (paths, file
// descriptors, MAC addresses, the boot configuration), and the size of
// its disk.
func (m *Machine) snapshotKey(q qemu.Config) (string, error) {
	base, err := m.cfg.Boot.snapshotBaseKey()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", base)
	q.Append, q.Kernel, q.Initrd, q.Dir, q.Name = strings.Join(m.kernelArgs(), " "), "", "", "", ""
	for _, a := range q.Args() {
		var keep []string
		for _, part := range strings.Split(a, ",") {
			if i := strings.IndexByte(part, '='); i >= 0 {
				switch part[:i] {
				case "path", "file", "fd", "mac", "mem-path":
					continue
				}
			}
			keep = append(keep, part)
		}
		fmt.Fprintf(h, "%q\n", strings.Join(keep, ","))
	}
	if q.Disk != nil {
		fi, err := os.Stat(q.Disk.Path)
		if err != nil {
			return "", fmt.Errorf("snapshot key: %w", err)
		}
		fmt.Fprintf(h, "disk %d\n", fi.Size())
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// snapshotHeader is a snapshot directory's header.json.
type snapshotHeader struct {
	Key         string   `json:"key"`
	State       int64    `json:"state_bytes"`
	StateSHA256 string   `json:"state_sha256"`
	RAM         int64    `json:"ram_bytes"`
	MACs        []string `json:"macs"` // the NICs' addresses in the saved device state
}

// Files of a snapshot directory.
const (
	snapHeader = "header.json"
	snapState  = "state"
	snapRAM    = "ram"
)

// errNoSnapshot says there is no snapshot of the shape yet.
var errNoSnapshot = errors.New("no snapshot")

// checkSnapshot reads dir's header and checks the files against it.
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
	return h, nil
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
// boot with q unchanged (the note says why).
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
	snap := filepath.Join(dir, key)
	h, err := checkSnapshot(snap, key)
	if errors.Is(err, errNoSnapshot) {
		h, err = m.takeSnapshot(ctx, *q, dir, key)
	}
	if err != nil {
		m.logf("snapshot %s: cold boot: %v", snap, err)
		return nil
	}
	r := &restoring{Restore: agentproto.Restore{Boot: boot, Seed: make([]byte, 64)}}
	if _, err := rand.Read(r.Seed); err != nil {
		m.logf("snapshot: cold boot: %v", err)
		return nil
	}
	if len(h.MACs) != len(q.NICs) {
		m.logf("snapshot %s: cold boot: it has %d NICs, the machine %d", snap, len(h.MACs), len(q.NICs))
		return nil
	}
	for i, n := range q.NICs {
		if !strings.EqualFold(h.MACs[i], n.MAC) {
			r.MACs = append(r.MACs, agentproto.MACChange{From: h.MACs[i], To: n.MAC})
		}
	}
	q.Append = m.snapshotAppend()
	q.RAM = &qemu.RAMFile{Path: filepath.Join(snap, snapRAM)}
	q.Incoming = true
	r.state = filepath.Join(snap, snapState)
	return r
}

// restoring is what restoreFrom found: the state file to load and what
// to send the agent.
type restoring struct {
	agentproto.Restore
	state string
}

// migrationCaps are the migration capabilities both ends set: the memory
// file is not in the state (x-ignore-shared), and the source tells when
// the migration ends (events).
var migrationCaps = map[string]any{"capabilities": []map[string]any{
	{"capability": "x-ignore-shared", "state": true}, {"capability": "events", "state": true}}}

// load has QEMU, started with -incoming defer, load the state and run
// the guest on, and sends the agent its configuration.
func (r *restoring) load(ctx context.Context, qc *qmp.Client, agent io.Writer) error {
	if _, err := qc.Execute(ctx, "migrate-set-capabilities", migrationCaps); err != nil {
		return fmt.Errorf("restore from the snapshot: set migration capabilities: %w", err)
	}
	// QEMU runs the command with /bin/sh -c; the path is quoted for it.
	uri := "exec:cat '" + strings.ReplaceAll(r.state, "'", `'\''`) + "'"
	if _, err := qc.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}); err != nil {
		return fmt.Errorf("restore from the snapshot: %w", err)
	}
	r.UnixNano = time.Now().UnixNano()
	if err := agentproto.NewWriter(agent).WriteFrame(agentproto.TRestore, 0, agentproto.Encode(r.Restore)); err != nil {
		return fmt.Errorf("send the restored machine its configuration: %w", err)
	}
	return nil
}

// errSnapshotBusy says another machine or run is taking the snapshot.
var errSnapshotBusy = errors.New("another machine or run is taking this snapshot")

// takeSnapshot boots q to the snapshot point and saves the snapshot in
// dir/key, atomically: it is made in a temporary directory renamed into
// place, under a lock that a second run finds taken (it boots cold).
func (m *Machine) takeSnapshot(ctx context.Context, q qemu.Config, dir, key string) (snapshotHeader, error) {
	var h snapshotHeader
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return h, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return h, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return h, errSnapshotBusy
	}
	final := filepath.Join(dir, key)
	if h, err := checkSnapshot(final, key); !errors.Is(err, errNoSnapshot) {
		return h, err // another run made it meanwhile
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-"+key+"-")
	if err != nil {
		return h, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	if h, err = m.saveSnapshot(ctx, q, tmp); err != nil {
		return h, fmt.Errorf("take snapshot: %w", err)
	}
	h.Key = key
	b, _ := json.Marshal(h)
	if err := os.WriteFile(filepath.Join(tmp, snapHeader), b, 0o600); err != nil {
		return h, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return h, err
	}
	m.logf("snapshot %s taken in %.2fs", final, time.Since(start).Seconds())
	return h, nil
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
	for done := false; !done; {
		ev, err := sub.Wait(ctx, "MIGRATION")
		if err != nil {
			return h, fmt.Errorf("wait for the migration: %w", err)
		}
		var st struct{ Status string }
		json.Unmarshal(ev.Data, &st)
		switch st.Status {
		case "completed":
			done = true
		case "failed", "cancelled":
			raw, _ := qc.Execute(ctx, "query-migrate", nil)
			return h, fmt.Errorf("migration %s: %s", st.Status, raw)
		}
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
	ram, err := os.Stat(filepath.Join(tmp, snapRAM))
	if err != nil {
		return h, err
	}
	h.RAM = ram.Size()
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
