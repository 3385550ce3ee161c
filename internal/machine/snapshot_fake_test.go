package machine_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

// A fake QEMU's snapshot boots (modes snapok and snapfail, fake_test.go):
// the take stops at the snapshot point, migrates a made-up state and runs
// on when it is sent cont; a restore loads it or fails as QEMU does when
// a state does not load.

// fakeLoadTime is how long the fake's incoming migration takes to load
// after migrate-incoming returns, as a real one does (~0.3 s measured):
// a clock stamped before the load ends is that much early.
const fakeLoadTime = 50 * time.Millisecond

// fakeLoaded is when the fake's incoming migration completed, or when
// the take's QEMU was sent cont (Unix ns): the guest runs from then on.
var fakeLoaded atomic.Int64

// fakeMigrate plays QMP's migrate (writing a state to the unix socket
// named) and migrate-incoming (a load): it returns what to do after the
// command's return, which returns the MIGRATION event to send.
func fakeMigrate(cmd string, raw json.RawMessage) func() string {
	var a struct{ URI string }
	json.Unmarshal(raw, &a)
	event := func() string {
		return fmt.Sprintf(`{"event": "MIGRATION", "data": {"status": "completed"}, "timestamp": {"seconds": %d, "microseconds": 0}}`, time.Now().Unix())
	}
	return func() string {
		if cmd == "migrate-incoming" && os.Getenv(fakeEnv) == "snaploadhang" {
			fmt.Println("[    0.400] fake: loading the state")
			select {} // a load that never completes
		}
		if cmd == "migrate" {
			c, err := net.Dial("unix", strings.TrimPrefix(a.URI, "unix:"))
			if err != nil {
				return `{"event": "MIGRATION", "data": {"status": "failed"}}`
			}
			io.WriteString(c, "fake device state")
			c.Close()
			return event()
		}
		// The state comes on the descriptor the URI names, as QEMU
		// reads it: the one the take saved, or the load fails.
		if state, err := readFakeState(a.URI); err != nil || state != "fake device state" {
			fmt.Fprintf(os.Stderr, "qemu-system-x86_64: load of migration failed: state %q from %s: %v\n", state, a.URI, err)
			return `{"event": "MIGRATION", "data": {"status": "failed"}}`
		}
		time.Sleep(fakeLoadTime) // the load's duration, not a wait for an event
		fakeLoaded.Store(time.Now().UnixNano())
		return event()
	}
}

// readFakeState reads the state an incoming migration's URI names: only
// fd:N, an inherited descriptor, as vmlab sends it.
func readFakeState(uri string) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(uri, "fd:"))
	if !strings.HasPrefix(uri, "fd:") || err != nil {
		return "", fmt.Errorf("not an fd: URI")
	}
	f := os.NewFile(uintptr(n), "state")
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// fakeSnapshotQEMU plays the snapshot modes; false: not one of them.
func fakeSnapshotQEMU(mode string, args []string) (int, bool) {
	switch mode {
	case "snapok", "snapfail", "snaphang", "snaploadhang":
	default:
		return 0, false
	}
	var appendArg, memPath string
	var memMiB int
	incoming := slices.Contains(args, "-incoming")
	for i, a := range args {
		if i+1 >= len(args) {
			break
		}
		switch {
		case a == "-append":
			appendArg = args[i+1]
		case a == "-object" && strings.HasPrefix(args[i+1], "memory-backend-file,"):
			o := fakeOpts(args[i+1])
			memPath = o["mem-path"]
			memMiB, _ = strconv.Atoi(strings.TrimSuffix(o["size"], "M"))
		}
	}
	switch {
	case incoming && mode == "snapfail":
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: load of migration failed: Invalid argument")
		return 1, true
	case !incoming && !agentproto.IsSnapshotBoot(appendArg):
		return fakeQEMU("serve", args), true
	}
	qmpConn, agentConn, dir := fakeConnect(args)
	if qmpConn == nil {
		return 1, true
	}
	go fakeQMP(qmpConn, dir)
	if !incoming && mode == "snaphang" {
		fmt.Println("[    0.400] fake: stuck before the snapshot point")
		select {}
	}
	if !incoming { // the take: QEMU made the memory file, the guest waits
		if f, err := os.OpenFile(memPath, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
			f.Truncate(int64(memMiB) << 20)
			f.WriteAt([]byte("the guest's memory"), 4096)
			f.Close()
		}
		point := agentproto.SnapshotPoint{Version: agentproto.Version}
		agentproto.NewWriter(agentConn).WriteFrame(agentproto.TSnapshot, 0, agentproto.Encode(point))
		// Then the Restore frame, once the host has sent cont.
	}
	var hdr [agentproto.HeaderSize]byte
	if _, err := io.ReadFull(agentConn, hdr[:]); err != nil {
		return 1, true
	}
	payload := make([]byte, binary.BigEndian.Uint32(hdr[6:]))
	if _, err := io.ReadFull(agentConn, payload); err != nil {
		return 1, true
	}
	var r agentproto.Restore
	json.Unmarshal(payload, &r)
	if loaded := fakeLoaded.Load(); loaded == 0 || r.UnixNano < loaded {
		fmt.Printf("[    0.500] restore: clock stamped %d ns before the guest ran on\n", loaded-r.UnixNano)
		return 1, true
	}
	agent.Serve(context.Background(), agentConn, agentproto.Hello{Version: agentproto.Version, Kernel: "fake restored"})
	return 0, true
}

// fakeSnapshotMachine is a fake machine with snapshot boots on, over 9p,
// with its snapshots in dir and its log lines in log.
func fakeSnapshotMachine(t *testing.T, mode, dir string, log *logLines) *machine.Machine {
	t.Helper()
	return fakeSnapshotMachineTimeout(t, mode, dir, log, 5*time.Second)
}

// fakeSnapshotMachineTimeout is fakeSnapshotMachine with the boot's
// deadline bootTimeout.
func fakeSnapshotMachineTimeout(t *testing.T, mode, dir string, log *logLines, bootTimeout time.Duration) *machine.Machine {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	boot := &machine.Boot{
		Kernel: &kernel.Kernel{Vmlinux: "/dev/null"}, Initramfs: "/dev/null", FS: "9p",
		QEMU: exe, Accel: qemu.Accel{Name: "tcg", Why: "fake"},
	}
	boot.SetSnapshotDir(dir)
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "fake", MemoryMiB: 128}, Boot: boot, BootTimeout: bootTimeout, Logf: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// logLines gathers a machine's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// snapshotNames lists dir's entries.
func snapshotNames(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestFakeSnapshotRestore: the first machine of a shape takes the
// snapshot and runs on in the QEMU it took it in (cont, no second QEMU),
// and the next is restored from it, each sent its clock once its guest
// runs (the fake refuses an earlier stamp: before the fix, it was stamped
// when migrate-incoming returned, a load time early). The memory file is
// in use while a restored QEMU runs.
func TestFakeSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	var log logLines
	for i := range 3 {
		m := fakeSnapshotMachine(t, "snapok", dir, &log)
		if err := m.Start(t.Context()); err != nil {
			t.Fatalf("machine %d: %v\nlog:\n%s", i, err, &log)
		}
		if out, err := m.Succeed(t.Context(), "echo up"); err != nil || out != "up\n" {
			t.Fatalf("machine %d: got %q, %v", i, out, err)
		}
		qmpLog, _ := os.ReadFile(filepath.Join(m.Dir(), fakeQMPLog))
		took, restored := strings.Contains(string(qmpLog), "migrate "), strings.Contains(string(qmpLog), "migrate-incoming")
		ranOn := strings.Contains(string(qmpLog), "cont ")
		if want := i == 0; took != want || ranOn != want || restored == want {
			t.Errorf("machine %d: took the snapshot %v, ran on from it %v, restored %v; want %v, %v, %v; its QMP commands:\n%s",
				i, took, ranOn, restored, want, want, !want, qmpLog)
		}
		entries, err := machine.ListSnapshots(dir)
		if err != nil || len(entries) != 1 || !entries[0].InUse || entries[0].Temp {
			t.Errorf("machine %d up: got snapshots %+v, %v; want one in use", i, entries, err)
		}
		m.Close()
	}
	if s := log.String(); strings.Contains(s, "cold boot") || strings.Count(s, "taken in") != 1 {
		t.Errorf("got log:\n%s\nwant one snapshot taken and no cold boot", s)
	}
	entries, err := machine.ListSnapshots(dir)
	if err != nil || len(entries) != 1 || entries[0].InUse {
		t.Errorf("machines closed: got snapshots %+v, %v; want one not in use", entries, err)
	}
	removed, err := machine.CleanSnapshots(dir)
	if err != nil || len(removed) != 1 {
		t.Errorf("clean: removed %+v, %v; want the snapshot", removed, err)
	}
	if names := snapshotNames(t, dir); len(names) != 0 {
		t.Errorf("after clean: got %q, want nothing (no orphan lock)", names)
	}
}

// TestFakeSnapshotRestoreFails: a restore whose QEMU fails its load is a
// cold boot of the machine, with a note, and the snapshot is set aside
// so that the next machine takes it again. Before the fix the machine
// failed, and so did every later one of its shape. The machine that
// takes a snapshot is not restored from it: it does not fail.
func TestFakeSnapshotRestoreFails(t *testing.T) {
	dir := t.TempDir()
	var log logLines
	// Machines 0 and 2 take the snapshot and run on from it; 1 and 3 are
	// restored from it, and fail.
	for i := range 4 {
		m := fakeSnapshotMachine(t, "snapfail", dir, &log)
		if err := m.Start(t.Context()); err != nil {
			t.Fatalf("machine %d: got %v, want a cold boot\nlog:\n%s", i, err, &log)
		}
		if out, err := m.Succeed(t.Context(), "echo up"); err != nil || out != "up\n" {
			t.Fatalf("machine %d: got %q, %v", i, out, err)
		}
		m.Close()
	}
	s := log.String()
	if n := strings.Count(s, "cold boot: restore failed: "); n != 2 || !strings.Contains(s, "load of migration failed") {
		t.Errorf("got log:\n%s\nwant two notes of a failed restore naming QEMU's error", s)
	}
	if n := strings.Count(s, "taken in"); n != 2 {
		t.Errorf("got %d snapshots taken, want 2 (the second machine takes it again)", n)
	}
	bad := 0
	for _, name := range snapshotNames(t, dir) {
		switch {
		case strings.HasPrefix(name, ".bad-"):
			bad++
		case !strings.HasSuffix(name, ".lock"):
			t.Errorf("left %q in the snapshot cache, want only the set aside ones", name)
		}
	}
	if bad != 2 {
		t.Errorf("got %d snapshots set aside, want 2", bad)
	}
	if removed, err := machine.CleanSnapshots(dir); err != nil || len(removed) != 2 || len(snapshotNames(t, dir)) != 0 {
		t.Errorf("clean: removed %+v, %v, left %q; want both set aside, nothing left", removed, err, snapshotNames(t, dir))
	}
}

// TestFakeSnapshotFailsAfterSave: a take that fails after QEMU saved the
// state (here writing the memory file) ends that QEMU, paused at the
// snapshot point, and the machine boots cold with a note. Before the fix
// the paused QEMU was left running: it outlived the machine.
func TestFakeSnapshotFailsAfterSave(t *testing.T) {
	defer machine.FailTakesAfterSave()()
	before := childProcesses(t)
	var log logLines
	m := fakeSnapshotMachine(t, "snapok", t.TempDir(), &log)
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("got %v, want a cold boot\nlog:\n%s", err, &log)
	}
	if s := log.String(); !strings.Contains(s, "cold boot: take snapshot: a test's failure") {
		t.Errorf("got log:\n%s\nwant a cold boot naming the take's failure", s)
	}
	if added := newProcesses(before, childProcesses(t)); len(added) != 1 {
		t.Errorf("the machine up: child processes %v added, want 1 (its QEMU)", added)
	}
	m.Close()
	if left := newProcesses(before, childProcesses(t)); len(left) != 0 {
		t.Errorf("the machine closed: child processes %v left, want none", left)
	}
}

// newProcesses returns the pids in now that are not in before.
func newProcesses(before, now []string) []string {
	var added []string
	for _, p := range now {
		if !slices.Contains(before, p) {
			added = append(added, p)
		}
	}
	return added
}

// childProcesses returns the pids of this process's children that have
// not exited (of every thread's: QEMU is started from a thread of its own).
func childProcesses(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, pid := range strings.Fields(string(b)) {
			if st, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestFakeSnapshotSpoiled: a snapshot whose memory file changed after it
// was taken (same size: before the fix only the size was checked) is a
// cold boot with a note and is set aside, and the next machine takes it
// again; a snapshot directory that lost its memory file is set aside by
// the next take instead of being in its way.
func TestFakeSnapshotSpoiled(t *testing.T) {
	dir := t.TempDir()
	var log logLines
	up := func(name string) {
		t.Helper()
		m := fakeSnapshotMachine(t, "snapok", dir, &log)
		if err := m.Start(t.Context()); err != nil {
			t.Fatalf("%s: %v\nlog:\n%s", name, err, &log)
		}
		m.Close()
	}
	up("first")
	entries, _ := machine.ListSnapshots(dir)
	if len(entries) != 1 {
		t.Fatalf("got snapshots %+v, want one", entries)
	}
	ram := filepath.Join(dir, entries[0].Name, "ram")
	f, err := os.OpenFile(ram, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("a flipped page"), 8192)
	f.Close()
	up("changed memory")
	if s := log.String(); !strings.Contains(s, "cold boot: its memory file (sha256") {
		t.Errorf("got log:\n%s\nwant a cold boot naming the memory file", s)
	}
	up("taken again")
	if n := strings.Count(log.String(), "taken in"); n != 2 {
		t.Errorf("got %d snapshots taken, want 2 (the changed one set aside, taken again)", n)
	}
	os.Remove(filepath.Join(dir, entries[0].Name, "ram"))
	up("lost memory")
	s := log.String()
	if n := strings.Count(s, "taken in"); n != 3 {
		t.Errorf("got log:\n%s\nwant a third snapshot taken in place of the one without memory", s)
	}
	if n := strings.Count(s, "cold boot"); n != 1 {
		t.Errorf("got log:\n%s\nwant one cold boot (the changed memory)", s)
	}
	bad := 0
	for _, name := range snapshotNames(t, dir) {
		if strings.HasPrefix(name, ".bad-") {
			bad++
		}
	}
	if bad != 2 {
		t.Errorf("got %d set aside, want 2 (%q)", bad, snapshotNames(t, dir))
	}
}

// TestFakeSnapshotTimeouts: a take whose guest never reaches the snapshot
// point, and a restore whose state never loads, each end at the boot's
// deadline in a cold boot whose note says, as any boot's timeout does,
// which machine, what was being done, that it timed out and after how
// long, and the console's last lines. Before, the notes said "i/o
// timeout" or "context deadline exceeded" with no console.
func TestFakeSnapshotTimeouts(t *testing.T) {
	for _, tt := range []struct {
		mode, what, console string
	}{
		{"snaphang", "cold boot: fake: take snapshot: boot to the snapshot point and save it: timed out after 1s", "fake: stuck before the snapshot point"},
		{"snaploadhang", "cold boot: restore failed: fake: restore from the snapshot: load its state and wait for the agent: timed out after 1s", "fake: loading the state"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			var log logLines
			dir := t.TempDir()
			if tt.mode == "snaploadhang" {
				// The machine that takes the snapshot runs on from it:
				// the next one loads it.
				first := fakeSnapshotMachineTimeout(t, tt.mode, dir, &log, time.Second)
				if err := first.Start(t.Context()); err != nil {
					t.Fatalf("the machine taking the snapshot: %v\nlog:\n%s", err, &log)
				}
				first.Close()
			}
			m := fakeSnapshotMachineTimeout(t, tt.mode, dir, &log, time.Second)
			if err := m.Start(t.Context()); err != nil {
				t.Fatalf("got %v, want a cold boot\nlog:\n%s", err, &log)
			}
			s := log.String()
			t.Logf("log:\n%s", s)
			for _, want := range []string{tt.what, "timed out after 1s", "--- last console lines ---\n", tt.console} {
				if !strings.Contains(s, want) {
					t.Errorf("got log:\n%s\nwant %q in it", s, want)
				}
			}
		})
	}
}
