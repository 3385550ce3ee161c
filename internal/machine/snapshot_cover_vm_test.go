package machine_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/coverage"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// snapRig boots machines with snapshot boots on, from a snapshot cache of
// the test's own (the kernel and initramfs are the shared cache's), and
// keeps their log lines.
type snapRig struct {
	t     *testing.T
	b     *machine.Boot
	snaps string // the snapshot cache
	log   logLines
}

func newSnapRig(t *testing.T) *snapRig {
	t.Helper()
	return newRig(t, "on")
}

// newRig is a snapRig whose snapshot option is snapshot ("off": every
// machine boots cold, over 9p as restored ones do).
func newRig(t *testing.T, snapshot string) *snapRig {
	t.Helper()
	if testing.Short() {
		t.Skip("boots VMs")
	}
	snaps := t.TempDir()
	b, err := machine.PrepareBoot(machine.BootOptions{Agent: vmtest.Agent(t), Accel: vmtest.Boot(t).Accel.Name,
		FS: "9p", Snapshot: snapshot, SnapshotDir: snaps})
	if err != nil {
		t.Fatal(err)
	}
	return &snapRig{t: t, b: b, snaps: snaps}
}

// machine makes a machine of cfg, closed when the test ends.
func (r *snapRig) machine(cfg machine.Config) *machine.Machine {
	r.t.Helper()
	cfg.Boot = r.b
	cfg.Logf = func(f string, a ...any) { r.log.logf(f, a...); r.t.Logf(f, a...) }
	m, err := machine.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { m.Close() })
	return m
}

// up starts a machine of cfg and logs how long it took and its stages.
func (r *snapRig) up(ctx context.Context, cfg machine.Config) *machine.Machine {
	r.t.Helper()
	m := r.machine(cfg)
	t0 := time.Now()
	if err := m.Start(ctx); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("%s up in %v (stages %s)", m.Name(), time.Since(t0), stagesOf(m))
	return m
}

// start starts a machine of cfg and fails the test unless it was restored
// from the snapshot.
func (r *snapRig) start(ctx context.Context, cfg machine.Config) *machine.Machine {
	r.t.Helper()
	m := r.up(ctx, cfg)
	r.restored(m)
	return m
}

// restored fails the test unless m's last boot was a restore.
func (r *snapRig) restored(m *machine.Machine) {
	r.t.Helper()
	if !strings.Contains(stagesOf(m), "restore") {
		r.t.Fatalf("%s: stages %s, want a restore from the snapshot; log:\n%s", m.Name(), stagesOf(m), r.log.String())
	}
}

// succeed runs command on m and returns its output.
func succeed(t *testing.T, ctx context.Context, m *machine.Machine, command string) string {
	t.Helper()
	out, err := m.Succeed(ctx, command)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSnapshotSystemd restores systemd machines (init = "systemd"): the
// snapshot point is in the agent before the handover, so a restored
// machine goes on to systemd. Each reaches multi-user.target with its
// declared unit, has its own machine-id and random numbers, and reboots,
// crashes and shuts down as a cold-booted one does. Before, a systemd
// machine always booted cold.
func TestSnapshotSystemd(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	needsSystemd(t)
	r := newSnapRig(t)
	ctx := t.Context()
	hello := "[Unit]\nDescription=declared hello\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
		"ExecStart=/bin/echo hello-from-a-declared-unit\n[Install]\nWantedBy=multi-user.target\n"
	cfg := func(name string) machine.Config {
		return machine.Config{Machine: spec.Machine{Name: name, Init: spec.InitSystemd,
			Units: []spec.UnitFile{{Name: "hello.service", Text: hello}}}}
	}
	ms := []*machine.Machine{r.start(ctx, cfg("sys1")), r.start(ctx, cfg("sys2"))}
	seen := map[string]string{}
	for _, m := range ms {
		waitMultiUser(t, ctx, m)
		out := succeed(t, ctx, m, "cat /proc/1/comm; hostname; systemctl is-active hello.service vmlab-agent.service")
		if want := "systemd\n" + m.Name() + "\nactive\nactive\n"; out != want {
			t.Errorf("%s: got %q, want %q (systemd, its hostname, the declared unit and the agent active)", m.Name(), out, want)
		}
		for _, c := range []string{"cat /etc/machine-id", "head -c16 /dev/urandom | od -An -tx1"} {
			v := succeed(t, ctx, m, c)
			if other, ok := seen[v]; ok {
				t.Errorf("%s: %s gave %q, as %s did", m.Name(), c, v, other)
			}
			seen[v] = m.Name()
		}
	}
	m := ms[1]
	t.Run("reboot", func(t *testing.T) {
		if err := m.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		r.restored(m)
		waitMultiUser(t, ctx, m)
	})
	t.Run("crash and start", func(t *testing.T) {
		m.Crash()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		r.restored(m)
		waitMultiUser(t, ctx, m)
	})
	t.Run("shutdown", func(t *testing.T) {
		if err := m.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if s := r.log.String(); strings.Contains(s, "cold boot") {
		t.Errorf("a machine booted cold:\n%s", s)
	}
}

// TestSnapshotImage restores machines that boot a machine image (the
// Debian image with systemd, a read-only erofs disk): the image's root, the machine's
// own hostname and random numbers; one in systemd mode from the same
// snapshot (the init mode changes nothing before the point); a reboot is
// a restore again. Before, an image machine always booted cold.
func TestSnapshotImage(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	img := vmtest.DebianImageWith(t, "iproute2", "iputils-ping", "systemd")
	r := newSnapRig(t)
	ctx := t.Context()
	fast := r.start(ctx, machine.Config{RootImage: img, Machine: spec.Machine{Name: "img1"}})
	sysd := r.start(ctx, machine.Config{RootImage: img, Machine: spec.Machine{Name: "img2", Init: spec.InitSystemd}})
	waitMultiUser(t, ctx, sysd)
	random := map[string]bool{}
	for _, m := range []*machine.Machine{fast, sysd} {
		out := succeed(t, ctx, m, ". /etc/os-release; echo $VERSION_CODENAME; hostname; head -c16 /dev/urandom | od -An -tx1")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || lines[0] != "bookworm" || lines[1] != m.Name() {
			t.Fatalf("%s: got %q, want the image's codename (bookworm), then its hostname", m.Name(), out)
		}
		if random[lines[2]] {
			t.Errorf("%s: /dev/urandom gave %s, as the other machine's did", m.Name(), lines[2])
		}
		random[lines[2]] = true
	}
	// The snapshot's fork server ran the host's bash: the image's serves.
	if out := succeed(t, ctx, fast, vmtest.ForkServerBash); out != "root\n" {
		t.Errorf("the fork server's bash is %q, want the image's", out)
	}
	if err := fast.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	r.restored(fast)
	if out := succeed(t, ctx, fast, "hostname"); out != "img1\n" {
		t.Errorf("after the reboot: hostname %q", out)
	}
	// Two snapshots: the new machines' (their disk mounted before the
	// point) and the rebooted one's, whose disk holds its first boot's
	// files (snapshot_disk.go).
	if s := r.log.String(); strings.Contains(s, "cold boot") || strings.Count(s, " taken in ") != 2 {
		t.Errorf("got log:\n%s\nwant two snapshots taken and no cold boot", s)
	}
}

// TestSnapshotDisplay restores machines with a display (QEMU's VGA, whose
// state migrates): on the second, restored from the cached snapshot, keys
// typed reach the shell on tty1, its text is read back, and a screenshot
// is the framebuffer console, not a blank screen. Before, a machine with
// a display always booted cold.
func TestSnapshotDisplay(t *testing.T) {
	r := newSnapRig(t)
	ctx := t.Context()
	r.start(ctx, machine.Config{Machine: spec.Machine{Name: "scr1", Display: true}}).Close()
	m := r.start(ctx, machine.Config{Machine: spec.Machine{Name: "scr2", Display: true}})
	if out := succeed(t, ctx, m, "cat /sys/class/graphics/fb0/name"); out != "bochs-drmdrmfb\n" {
		t.Errorf("framebuffer %q, want bochs's", out)
	}
	// Paced as NixOS does: keys typed back to back were lost under load.
	if err := m.SendChars(ctx, "echo typed-after-restore > /tmp/typed\n", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForFile(ctx, "/tmp/typed", 30*time.Second); err != nil {
		t.Fatalf("the typed command did not run: %v", err)
	}
	text, err := m.GetTTYText(ctx, 1)
	if err != nil || !strings.Contains(text, "echo typed-after-restore") {
		t.Errorf("tty1's text: got %q, %v; want the typed command", text, err)
	}
	b, err := m.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, b)
	if s := r.log.String(); strings.Contains(s, "cold boot") {
		t.Errorf("a machine booted cold:\n%s", s)
	}
}

// TestSnapshotCoverage restores machines that collect coverage: their
// share is mounted after the snapshot point, so only the key knows it
// (the command line has one writable share more). A command in a fast
// and in a systemd machine, and a systemd unit, get GOCOVERDIR, and
// what they write there reaches the machine's own raw directory on the
// host. Before, such a machine always booted cold, and a restored systemd
// machine's agent read the coverage directory from a kernel command line
// that has no boot config.
func TestSnapshotCoverage(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	needsSystemd(t)
	r := newSnapRig(t)
	ctx := t.Context()
	unit := "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo \"$GOCOVERDIR\" > /tmp/unit-coverdir'\n" +
		"[Install]\nWantedBy=multi-user.target\n"
	raw := t.TempDir()
	cfg := func(name string, units ...spec.UnitFile) machine.Config {
		init := ""
		if len(units) > 0 {
			init = spec.InitSystemd
		}
		return machine.Config{Machine: spec.Machine{Name: name, Init: init, Units: units},
			Coverage: machine.Coverage{Dir: filepath.Join(raw, name), Test: "f.test"}}
	}
	fast := r.start(ctx, cfg("cov1"))
	sysd := r.start(ctx, cfg("cov2", spec.UnitFile{Name: "cov.service", Text: unit}))
	for _, m := range []*machine.Machine{fast, sysd} {
		want := agentproto.CoverageGuestDir + "/go\n"
		if out := succeed(t, ctx, m, `echo "$GOCOVERDIR"; echo `+m.Name()+` > "$GOCOVERDIR/probe"`); out != want {
			t.Errorf("%s: GOCOVERDIR %q, want %q", m.Name(), out, want)
		}
		host := filepath.Join(raw, m.Name(), coverage.GuestDir, coverage.GoDir, "probe")
		if b, err := os.ReadFile(host); err != nil || string(b) != m.Name()+"\n" {
			t.Errorf("%s: the host's %s: got %q, %v; want the machine's name", m.Name(), host, b, err)
		}
		if m == sysd {
			waitMultiUser(t, ctx, m)
			if out := succeed(t, ctx, m, "cat /tmp/unit-coverdir"); out != want {
				t.Errorf("%s: a unit's GOCOVERDIR %q, want %q", m.Name(), out, want)
			}
		}
	}
	if s := r.log.String(); strings.Contains(s, "cold boot") {
		t.Errorf("a machine booted cold:\n%s", s)
	}
}

// TestSnapshotDisks restores machines whose disks outlive a boot: a kept
// disk (DiskImage) keeps what the guest wrote across a shutdown and into
// another machine, and an extra disk given a partition table while the
// machine was down shows its partition after the restore, though the
// snapshot's kernel probed an empty disk. Before, a machine with a kept
// disk always booted cold, and a restored machine saw the partition
// table of the snapshot's disk.
func TestSnapshotDisks(t *testing.T) {
	r := newSnapRig(t)
	ctx := t.Context()
	kept := filepath.Join(t.TempDir(), "kept.img")
	dir := t.TempDir()
	cfg := func(name, dir string) machine.Config {
		return machine.Config{Machine: spec.Machine{Name: name, Disks: []int{16}}, DiskImage: kept, Dir: dir}
	}
	m := r.start(ctx, cfg("disk1", dir))
	succeed(t, ctx, m, "echo written-before > /root/kept && sync")
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	writeMBR(t, filepath.Join(dir, "disk0.img"))
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.restored(m)
	if out := succeed(t, ctx, m, "cat /root/kept; grep -o 'vda1$' /proc/partitions"); out != "written-before\nvda1\n" {
		t.Errorf("after the restore: got %q, want the kept file and the extra disk's partition vda1", out)
	}
	m.Close()
	other := r.start(ctx, cfg("disk2", t.TempDir()))
	if out := succeed(t, ctx, other, "cat /root/kept; grep -c 'vda1$' /proc/partitions || true"); out != "written-before\n0\n" {
		t.Errorf("another machine of the kept disk: got %q, want the kept file and no partition on its own extra disk", out)
	}
	if s := r.log.String(); strings.Contains(s, "cold boot") {
		t.Errorf("a machine booted cold:\n%s", s)
	}
}

// writeMBR writes a DOS partition table with one Linux partition (from
// sector 2048 to the end) to the disk image at path.
func writeMBR(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var mbr [512]byte
	e := mbr[446:]
	e[4] = 0x83 // Linux
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], uint32(fi.Size()/512-2048))
	mbr[510], mbr[511] = 0x55, 0xaa
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mbr[:], 0); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotForward restores machines with a user-mode NIC and a
// forwarded port: slirp's state is migrated, its forwards are the
// restored QEMU's command line (and the picked port, added once it
// runs), and the host's ports are not in the key. Two machines of one
// snapshot, each with a host port of its own, serve the host their own
// page, again after a reboot. Before, such a machine always booted cold.
func TestSnapshotForward(t *testing.T) {
	r := newSnapRig(t)
	ctx := t.Context()
	cfg := func(name string) machine.Config {
		return machine.Config{Machine: spec.Machine{Name: name, UserNet: true,
			ForwardPorts: []spec.Forward{{HostPort: 0, GuestPort: 80}},
			Setup:        spec.Setup{Files: []spec.File{{Path: "/srv/www/index.html", Content: name + "\n"}}},
			Services:     []agentproto.Service{{Name: "web", Command: "busybox httpd -f -p 80 -h /srv/www", ReadyPort: 80}}}}
	}
	get := func(m *machine.Machine) string {
		t.Helper()
		// The service starts with the boot; it listens once it is ready.
		if err := m.WaitForUnit(ctx, "web", "", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		f := m.Forwards()
		if len(f) != 1 {
			t.Fatalf("%s: forwards %v, want one", m.Name(), f)
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", f[0].HostPort))
		if err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ms := []*machine.Machine{r.start(ctx, cfg("fwd1")), r.start(ctx, cfg("fwd2")), r.start(ctx, cfg("fwd3"))}
	for _, m := range ms {
		if got := get(m); got != m.Name()+"\n" {
			t.Errorf("%s: through its forward: got %q", m.Name(), got)
		}
	}
	if err := ms[1].Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	r.restored(ms[1])
	if got := get(ms[1]); got != "fwd2\n" {
		t.Errorf("after a reboot: got %q", got)
	}
	if s := r.log.String(); strings.Contains(s, "cold boot") {
		t.Errorf("a machine booted cold:\n%s", s)
	}
}
