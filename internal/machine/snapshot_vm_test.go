package machine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSnapshotRestore checks snapshot boots: the first machine of a shape
// takes the snapshot and is restored from it, a second is restored from
// the cached one, and each is its own machine: its hostname, a clock set
// from the host, random numbers of its own; a reboot restores it again.
func TestSnapshotRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	ctx := t.Context()
	r := newSnapRig(t)
	start := func(name string) *machine.Machine {
		return r.up(ctx, machine.Config{Machine: spec.Machine{Name: name}})
	}
	a := start("alpha")
	bm := start("beta")
	if logs := r.log.String(); strings.Contains(logs, "cold boot") {
		t.Fatalf("a machine booted cold:\n%s", logs)
	}
	random := map[string]bool{}
	for _, m := range []*machine.Machine{a, bm} {
		for i := 0; i < 2; i++ {
			out, err := m.Succeed(ctx, "hostname; grep -c restore /proc/cmdline || true; date +%s; head -c16 /dev/urandom | od -An -tx1")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 4 || lines[0] != m.Name() {
				t.Fatalf("%s: got %q, want its own hostname first", m.Name(), out)
			}
			secs, _ := strconv.ParseInt(lines[2], 10, 64)
			if d := time.Since(time.Unix(secs, 0)); d < -5*time.Second || d > 5*time.Second {
				t.Errorf("%s: clock is %v off the host's", m.Name(), d)
			}
			if random[lines[3]] {
				t.Errorf("%s: /dev/urandom gave %s, as another read did", m.Name(), lines[3])
			}
			random[lines[3]] = true
		}
		// Its new disk was mounted before the point: the restore
		// gave it the snapshot's copy (snapshot_disk.go).
		if st := stagesOf(m); !strings.Contains(st, "disk,restore") {
			t.Errorf("%s: stages %s, want the disk mounted before the restore", m.Name(), st)
		}
		// The fork server was in the snapshot: the initramfs's copy of
		// bash, not loaded again from the root after the restore.
		if out, err := m.Succeed(ctx, vmtest.ForkServerBash); err != nil || out != "copy\n" {
			t.Errorf("%s: the fork server's bash is %q (%v), want the initramfs's copy", m.Name(), out, err)
		}
		// lo came up before the point; the machine's own disk is its own
		// (its partition table is not read again).
		out, err := m.Succeed(ctx, "echo $(( $(cat /sys/class/net/lo/flags) & 1 )); ip -o -4 addr show dev lo | grep -o '127.0.0.1/8'; grep -c 'vd' /proc/partitions; touch /root/x && sync && echo written")
		if err != nil || out != "1\n127.0.0.1/8\n1\nwritten\n" {
			t.Errorf("%s: lo and the disk: got %q, %v; want lo up with 127.0.0.1/8, one disk without partitions, a write", m.Name(), out, err)
		}
	}
	if _, err := bm.Succeed(ctx, "echo kept > /root/kept; sync"); err != nil {
		t.Fatal(err)
	}
	if err := bm.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	// A disk that holds something is mounted after the point, from
	// another snapshot, and what the machine wrote is there.
	if out, err := bm.Succeed(ctx, "hostname; cat /root/kept; ls /root/x"); err != nil || out != "beta\nkept\n/root/x\n" {
		t.Errorf("after reboot: got %q, %v; want the hostname and the files written before", out, err)
	}
	if st := stagesOf(bm); !strings.Contains(st, "restore,disk") {
		t.Errorf("after reboot: stages %s, want the disk mounted after the restore", st)
	}
	bm.Crash()
	if err := bm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := bm.Succeed(ctx, "cat /root/kept"); err != nil || out != "kept\n" {
		t.Errorf("after a crash: got %q, %v", out, err)
	}
	if err := bm.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func stagesOf(m *machine.Machine) string {
	var s []string
	for _, st := range m.Hello().Stages {
		s = append(s, st.Name)
	}
	return strings.Join(s, ",")
}

// TestSnapshotConcurrentTake starts two machines of one shape at once on
// an empty cache: exactly one takes the snapshot; the other, while the
// take is under way, boots cold with the note that another is taking it
// (the two overlapped), or else is restored from it. Both come up, the
// cache holds one whole snapshot and no temporary directory, and a third
// machine is restored from it.
func TestSnapshotConcurrentTake(t *testing.T) {
	r := newSnapRig(t)
	ctx, snaps, log := t.Context(), r.snaps, &r.log
	newMachine := func(name string) *machine.Machine {
		return r.machine(machine.Config{Machine: spec.Machine{Name: name}})
	}
	errs := make(chan error, 2)
	ms := map[string]*machine.Machine{}
	for _, name := range []string{"one", "two"} {
		m := newMachine(name)
		ms[name] = m
		go func() {
			err := m.Start(ctx)
			if err == nil {
				var out string
				if out, err = m.Succeed(ctx, "hostname"); err == nil && out != name+"\n" {
					err = fmt.Errorf("%s: hostname %q", name, out)
				}
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	lines := log.String()
	var took, other string
	for _, name := range []string{"one", "two"} {
		if containsLine(lines, name+": snapshot ", " taken in ") {
			took = name
		} else {
			other = name
		}
	}
	if took == "" || other == "" || strings.Count(lines, " taken in ") != 1 {
		t.Fatalf("got log:\n%s\nwant exactly one machine to take the snapshot", lines)
	}
	busy := containsLine(lines, other+": snapshot ", "cold boot: another machine or run is taking this snapshot")
	restored := strings.Contains(stagesOf(ms[other]), "restore")
	if busy == restored {
		t.Errorf("%s: cold boot with the note %v, restored %v; want one of them (log:\n%s)", other, busy, restored, lines)
	}
	t.Logf("%s took the snapshot; %s overlapped it (booted cold): %v", took, other, busy)
	entries, err := os.ReadDir(snaps)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 || strings.HasPrefix(dirs[0], ".") {
		t.Fatalf("snapshot directories %v, want one whole snapshot", dirs)
	}
	if _, err := os.Stat(filepath.Join(snaps, dirs[0], "header.json")); err != nil {
		t.Error(err)
	}
	three := newMachine("three")
	if err := three.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := stagesOf(three); !strings.Contains(st, "restore") {
		t.Errorf("three: stages %s, want a restore from the snapshot", st)
	}
}

// containsLine says whether a line of s starts with prefix and holds sub.
func containsLine(s, prefix, sub string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// TestSnapshotBadState restores a machine from a snapshot whose state
// file passes the checks (its header rewritten to match) but is not a
// state QEMU can load: the machine boots cold with the note, and the
// snapshot is set aside. Before the fix the machine failed to start.
func TestSnapshotBadState(t *testing.T) {
	r := newSnapRig(t)
	ctx, snaps, log := t.Context(), r.snaps, &r.log
	start := func(name string) *machine.Machine {
		m := r.machine(machine.Config{Machine: spec.Machine{Name: name}})
		if err := m.Start(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	start("alpha").Close()
	entries, err := machine.ListSnapshots(snaps)
	if err != nil || len(entries) != 1 {
		t.Fatalf("got snapshots %+v, %v; want one", entries, err)
	}
	dir := filepath.Join(snaps, entries[0].Name)
	if err := machine.ReplaceSnapshotState(dir, []byte("QEVM this is no device state")); err != nil {
		t.Fatal(err)
	}
	beta := start("beta")
	if out, err := beta.Succeed(ctx, "hostname"); err != nil || out != "beta\n" {
		t.Errorf("beta: got %q, %v", out, err)
	}
	if s := log.String(); !strings.Contains(s, "cold boot: restore failed: ") || !strings.Contains(s, "Unsupported migration stream version") {
		t.Errorf("got log:\n%s\nwant a cold boot after a failed restore, with QEMU's reason", s)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the snapshot that failed is still in place")
	}
}
