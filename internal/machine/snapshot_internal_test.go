package machine

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/qemu"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestCheckSnapshot checks that a snapshot whose files are not the ones
// saved is refused (the machine then boots cold): a missing one, another
// shape's, a truncated or changed state file, a truncated memory file.
func TestCheckSnapshot(t *testing.T) {
	mk := func(t *testing.T) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, snapState), []byte("device state"), 0o600)
		os.WriteFile(filepath.Join(dir, snapRAM), make([]byte, 4096), 0o600)
		writeTestDisk(t, filepath.Join(dir, snapDisk))
		writeTestHeader(t, dir, "k1")
		return dir
	}
	_, state, err := checkSnapshot(mk(t), "k1")
	if err != nil {
		t.Fatalf("a whole snapshot: %v", err)
	}
	// The state file comes back open at its start, for QEMU to load.
	if b, err := io.ReadAll(state); err != nil || string(b) != "device state" {
		t.Errorf("the state file read %q, %v; want the whole state", b, err)
	}
	state.Close()
	if _, _, err := checkSnapshot(t.TempDir(), "k1"); !errors.Is(err, errNoSnapshot) {
		t.Errorf("no snapshot: got %v, want errNoSnapshot", err)
	}
	for _, tt := range []struct {
		name, want string
		spoil      func(dir string)
		key        string
	}{
		{"another shape", "shape", func(string) {}, "k2"},
		{"truncated state", "state file", func(d string) { os.Truncate(filepath.Join(d, snapState), 3) }, "k1"},
		{"changed state", "state file", func(d string) { os.WriteFile(filepath.Join(d, snapState), []byte("device stale"), 0o600) }, "k1"},
		{"truncated memory", "memory file", func(d string) { os.Truncate(filepath.Join(d, snapRAM), 100) }, "k1"},
		{"bad header", "header", func(d string) { os.WriteFile(filepath.Join(d, snapHeader), []byte("{"), 0o600) }, "k1"},
		// Found by trying to break restores on purpose: a NIC's address
		// changed in the header was covered by no sum, and a machine of
		// the shape failed its network configuration on every run.
		{"damaged header", "header.json is damaged", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, snapHeader))
			os.WriteFile(filepath.Join(d, snapHeader), bytes.Replace(b, []byte("52:54:00:12:01:01"), []byte("52:54:00:12:01:02"), 1), 0o600)
		}, "k1"},
		{"big header", "more than a header's", func(d string) {
			os.Truncate(filepath.Join(d, snapHeader), 1<<30)
		}, "k1"},
		// A state file that never ends, or a FIFO nobody writes, hung the
		// check (and the run, past Ctrl-C and -timeout) for ever.
		{"state a link to a device", "state is a symbolic link", func(d string) {
			os.Remove(filepath.Join(d, snapState))
			os.Symlink("/dev/zero", filepath.Join(d, snapState))
		}, "k1"},
		{"state a FIFO", "state is not a regular file", func(d string) {
			os.Remove(filepath.Join(d, snapState))
			unix.Mkfifo(filepath.Join(d, snapState), 0o600)
		}, "k1"},
		{"header a FIFO", "header.json is not a regular file", func(d string) {
			os.Remove(filepath.Join(d, snapHeader))
			unix.Mkfifo(filepath.Join(d, snapHeader), 0o600)
		}, "k1"},
		{"state huge and sparse", "state file", func(d string) {
			os.Truncate(filepath.Join(d, snapState), 1<<40)
		}, "k1"},
		{"memory a link", "ram is a symbolic link", func(d string) {
			os.Rename(filepath.Join(d, snapRAM), filepath.Join(d, "ram.real"))
			os.Symlink("ram.real", filepath.Join(d, snapRAM))
		}, "k1"},
		// The disk at the point (snapshot_disk.go).
		{"no disk", "disk", func(d string) { os.Remove(filepath.Join(d, snapDisk)) }, "k1"},
		{"truncated disk", "disk has", func(d string) { os.Truncate(filepath.Join(d, snapDisk), 1<<20) }, "k1"},
		{"changed disk", "its disk (sha256", func(d string) {
			f, _ := os.OpenFile(filepath.Join(d, snapDisk), os.O_WRONLY, 0)
			f.WriteAt([]byte("bit rot"), 3<<20)
			f.Close()
		}, "k1"},
		{"disk a link", "disk is a symbolic link", func(d string) {
			os.Rename(filepath.Join(d, snapDisk), filepath.Join(d, "disk.real"))
			os.Symlink("disk.real", filepath.Join(d, snapDisk))
		}, "k1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := mk(t)
			tt.spoil(dir)
			_, state, err := checkSnapshot(dir, tt.key)
			if state != nil {
				t.Errorf("a spoiled snapshot's state file came back open")
			}
			if err == nil || errors.Is(err, errNoSnapshot) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about the %s", err, tt.want)
			}
		})
	}
}

// writeTestHeader writes the header of the snapshot in dir, of shape key,
// for its state and memory files as they are, with one NIC.
func writeTestHeader(t *testing.T, dir, key string) {
	t.Helper()
	h := snapshotHeader{Key: key, MACs: []string{"52:54:00:12:01:01"}}
	var err error
	if h.StateSHA256, h.State, err = sumFile(filepath.Join(dir, snapState)); err != nil {
		t.Fatal(err)
	}
	if h.RAMSHA256, h.RAM, err = sumSparse(filepath.Join(dir, snapRAM)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, snapDisk)); err == nil {
		if h.DiskSHA256, h.Disk, err = sumSparse(filepath.Join(dir, snapDisk)); err != nil {
			t.Fatal(err)
		}
	}
	h.Sum = headerSum(h)
	b, _ := json.Marshal(h)
	if err := os.WriteFile(filepath.Join(dir, snapHeader), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeTestDisk writes a sparse 8 MiB disk image at path with data in two
// places.
func writeTestDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(8 << 20)
	f.WriteAt(bytes.Repeat([]byte("superblock"), 100), 1024)
	f.WriteAt(bytes.Repeat([]byte("inodes"), 2000), 5<<20)
}

// TestGiveDisk checks that a machine restored from a snapshot with a disk
// gets a copy of it in place of its new disk: the same bytes, the holes
// left holes; and that a header without a disk is refused.
func TestGiveDisk(t *testing.T) {
	dir := t.TempDir()
	writeTestDisk(t, filepath.Join(dir, snapDisk))
	var h snapshotHeader
	if err := saveDisk(t.TempDir(), filepath.Join(dir, snapDisk), &h); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "root.img")
	if err := MakeDiskImage(own, 8); err != nil {
		t.Skip(err) // no mke2fs: any file would do
	}
	// A run killed in the middle of its copy left part of one.
	if err := os.WriteFile(own+".new", []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := giveDisk(dir, own, h); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, snapDisk))
	got, _ := os.ReadFile(own)
	if !bytes.Equal(got, want) {
		t.Errorf("the machine's disk is not the snapshot's (%d bytes against %d)", len(got), len(want))
	}
	var st unix.Stat_t
	if err := unix.Stat(own, &st); err != nil || st.Blocks*512 > 1<<20 {
		t.Errorf("the copy takes %d bytes of the disk (%v), want the data's, under 1 MiB", st.Blocks*512, err)
	}
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the copy's mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if sum, _, _ := sumSparse(own); sum != h.DiskSHA256 {
		t.Errorf("the copy's sum %.12s, the header's %.12s", sum, h.DiskSHA256)
	}
	if entries, _ := os.ReadDir(filepath.Dir(own)); len(entries) != 1 {
		t.Errorf("the machine's directory holds %d files, want the disk alone", len(entries))
	}
	if err := giveDisk(dir, own, snapshotHeader{}); err == nil || !strings.Contains(err.Error(), "no disk") {
		t.Errorf("a header without a disk: got %v, want it refused", err)
	}
}

// TestReadSnapshot checks the option's values and its error.
func TestReadSnapshot(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if on, err := readSnapshot("", env("on")); !on || err != nil {
		t.Errorf("VMLAB_SNAPSHOT=on: got %v, %v", on, err)
	}
	if on, err := readSnapshot("off", env("on")); on || err != nil {
		t.Errorf("off over VMLAB_SNAPSHOT=on: got %v, %v", on, err)
	}
	if on, err := readSnapshot("", env("off")); on || err != nil {
		t.Errorf("VMLAB_SNAPSHOT=off: got %v, %v", on, err)
	}
	if on, err := readSnapshot("", env("")); !on || err != nil {
		t.Errorf("default: got %v, %v; want on", on, err)
	}
	if _, err := readSnapshot("yes", env("")); err == nil || !strings.Contains(err.Error(), "want on or off") {
		t.Errorf("yes: got %v, want an error naming on and off", err)
	}
}

// TestReadFS: machines restored from snapshots default to 9p (virtiofs
// cannot be migrated), and a transport asked for, by flag or by $VMLAB_FS,
// is kept (a virtiofs machine then boots cold).
func TestReadFS(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	for _, tc := range []struct {
		asked, env string
		snapshot   bool
		want       string
	}{
		{snapshot: true, want: "9p"},
		{snapshot: false, want: ""},
		{asked: "virtiofs", snapshot: true, want: "virtiofs"},
		{env: "virtiofs", snapshot: true, want: "virtiofs"},
		{asked: "9p", env: "virtiofs", want: "9p"},
	} {
		if got := readFS(tc.asked, tc.snapshot, env(tc.env)); got != tc.want {
			t.Errorf("readFS(%q, %v) with VMLAB_FS=%q: got %q, want %q", tc.asked, tc.snapshot, tc.env, got, tc.want)
		}
	}
}

// TestCheckSnapshotMemory checks that a memory file of the right size
// whose content changed is refused (before the fix only its size was
// checked, and the restored kernel ran on the changed memory), and that
// the hash is checked once per process and file, not at every restore.
func TestCheckSnapshotMemory(t *testing.T) {
	// Each check's state file is closed: only its verdict counts here.
	check := func(dir, key string) error {
		_, state, err := checkSnapshot(dir, key)
		state.Close()
		return err
	}
	dir := t.TempDir()
	ram := filepath.Join(dir, snapRAM)
	os.WriteFile(filepath.Join(dir, snapState), []byte("device state"), 0o600)
	os.WriteFile(ram, make([]byte, 8192), 0o600)
	writeTestHeader(t, dir, "k1")
	if err := check(dir, "k1"); err != nil {
		t.Fatalf("a whole snapshot: %v", err)
	}
	spoil := func() {
		f, _ := os.OpenFile(ram, os.O_WRONLY, 0)
		f.WriteAt([]byte("corrupt"), 4096)
		f.Close()
	}
	// The same file (inode, size, times) is not hashed again.
	hashed := sparseHashes.Load()
	if err := check(dir, "k1"); err != nil || sparseHashes.Load() != hashed {
		t.Errorf("a file checked already: got %v and %d more hashes, want the cached verdict", err, sparseHashes.Load()-hashed)
	}
	// A file written since is.
	spoil()
	now := time.Now()
	os.Chtimes(ram, now, now)
	if err := check(dir, "k1"); err == nil || !strings.Contains(err.Error(), "memory file") {
		t.Errorf("changed memory: got %v, want an error about the memory file", err)
	}
}

// TestSnapshotKey checks that what a restored machine would see of the
// snapshot machine's shape is in the key: every disk's size (before the
// fix an extra disk's was not: virtio_blk reads the capacity before the
// snapshot point), memory, CPUs, shares, display, the accelerator; and
// that what is the machine's own (paths, MACs) is not.
func TestSnapshotKey(t *testing.T) {
	dir := t.TempDir()
	disk := func(name string, mib int64) string {
		p := filepath.Join(dir, name)
		f, _ := os.Create(p)
		f.Truncate(mib << 20)
		f.Close()
		return p
	}
	boot := &Boot{Kernel: &kernel.Kernel{Vmlinux: "/dev/null"}, Accel: qemu.Accel{Name: "tcg"}}
	boot.snapBase.once.Do(func() { boot.snapBase.key = "base" })
	m := &Machine{cfg: Config{Boot: boot}}
	extra := func(path string) []string {
		return []string{"-drive", "file=" + strings.ReplaceAll(path, ",", ",,") + ",format=raw,if=none,id=disk0", "-device", "virtio-blk-pci,drive=disk0"}
	}
	base := qemu.Config{MemoryMiB: 512, CPUs: 1, Accel: boot.Accel, FS: "9p",
		Shares: []qemu.Share{{Tag: "root", HostPath: "/"}},
		Disk:   &qemu.Disk{Path: disk("root-a.img", 8), Serial: "root", Cache: "unsafe"},
		Extra:  extra(disk("extra-a.img", 4)),
		NICs:   []qemu.NIC{{MAC: "52:54:00:00:00:01"}}}
	key := func(t *testing.T, q qemu.Config) string {
		t.Helper()
		k, err := m.snapshotKey(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	want := key(t, base)
	for _, tt := range []struct {
		name   string
		change func(q *qemu.Config)
		same   bool
	}{
		{"another machine's paths and MAC", func(q *qemu.Config) {
			q.Disk = &qemu.Disk{Path: disk("root-b.img", 8), Serial: "root", Cache: "unsafe"}
			q.Extra = extra(disk("extra,b.img", 4))
			q.Shares = []qemu.Share{{Tag: "root", HostPath: "/srv"}}
			q.NICs = []qemu.NIC{{MAC: "52:54:00:00:00:02"}}
		}, true},
		{"root disk size", func(q *qemu.Config) {
			q.Disk = &qemu.Disk{Path: disk("root-c.img", 16), Serial: "root", Cache: "unsafe"}
		}, false},
		{"extra disk size", func(q *qemu.Config) { q.Extra = extra(disk("extra-c.img", 8)) }, false},
		{"no extra disk", func(q *qemu.Config) { q.Extra = nil }, false},
		{"memory", func(q *qemu.Config) { q.MemoryMiB = 1024 }, false},
		{"cpus", func(q *qemu.Config) { q.CPUs = 2 }, false},
		{"another share", func(q *qemu.Config) { q.Shares = append(q.Shares, qemu.Share{Tag: "data", HostPath: "/srv"}) }, false},
		{"read-only share", func(q *qemu.Config) { q.Shares = []qemu.Share{{Tag: "root", HostPath: "/", ReadOnly: true}} }, false},
		{"display", func(q *qemu.Config) { q.Display = true }, false},
		{"another initramfs", func(q *qemu.Config) { q.Initrd = disk("display.cpio", 1) }, false},
		{"kvm", func(q *qemu.Config) { q.Accel = qemu.Accel{Name: "kvm"} }, false},
		{"user-mode NIC", func(q *qemu.Config) { q.UserNet = &qemu.UserNet{} }, false},
		{"kept disk (writeback)", func(q *qemu.Config) {
			q.Disk = &qemu.Disk{Path: disk("root-k.img", 8), Serial: "root", Cache: "writeback"}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := base
			tt.change(&q)
			if got := key(t, q); (got == want) != tt.same {
				t.Errorf("got key %s against %s; want them the same: %v", got, want, tt.same)
			}
		})
	}
	// The machine's fresh disk is made after the snapshot's turn
	// (diskImage): its key has the size it will be made with.
	t.Run("fresh disk not made yet", func(t *testing.T) {
		q := base
		q.Disk = &qemu.Disk{Path: filepath.Join(dir, "root-fresh.img"), Serial: "root", Cache: "unsafe"}
		for _, tt := range []struct {
			mib  int
			same bool
		}{{8, true}, {16, false}} {
			fresh := &Machine{cfg: Config{Boot: boot, Machine: spec.Machine{DiskMiB: tt.mib}}, diskMade: true}
			if got, err := fresh.snapshotKey(q, nil); err != nil || (got == want) != tt.same {
				t.Errorf("a fresh disk of %d MiB: got key %s, %v against %s; want them the same: %v", tt.mib, got, err, want, tt.same)
			}
		}
		// Any other missing drive is an error: no key, a cold boot.
		if got, err := m.snapshotKey(q, nil); err == nil {
			t.Errorf("a missing disk the machine did not make: got key %s, want an error", got)
		}
	})
	// A machine whose new disk its snapshot boot mounts before the point
	// is of a shape of its own, and so is each way of mounting it.
	t.Run("disk at the point", func(t *testing.T) {
		at := func(d *agentproto.RootDisk) string {
			k, err := m.snapshotKey(base, d)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		ext4 := at(&agentproto.RootDisk{Serial: "root", FSType: "ext4", Options: "noatime"})
		other := at(&agentproto.RootDisk{Serial: "root", FSType: "ext4", Options: "noatime,nodiratime"})
		if ext4 == want || other == ext4 {
			t.Errorf("keys: without the disk %s, with it %s, with other options %s; want three", want, ext4, other)
		}
	})
	// A machine image: its content, which the kernel reads before the
	// point, and not its path. Before, two images of one size had one key.
	imageKey := func(t *testing.T, img *RootImage) string {
		t.Helper()
		im := &Machine{cfg: Config{Boot: boot, RootImage: img}}
		q := base
		q.Image = qemuImage(img)
		k, err := im.snapshotKey(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	a, b, a2 := file("a.erofs", "image A"), file("b.erofs", "image B"), file("a2.erofs", "image A")
	for _, tt := range []struct {
		name string
		x, y *RootImage
		same bool
	}{
		{"digests differ", &RootImage{Name: "i", Path: a, FSType: "erofs", SHA256: "aa"}, &RootImage{Name: "i", Path: a, FSType: "erofs", SHA256: "bb"}, false},
		{"contents of one size differ", &RootImage{Name: "i", Path: a, FSType: "erofs"}, &RootImage{Name: "i", Path: b, FSType: "erofs"}, false},
		{"one content, two paths", &RootImage{Name: "i", Path: a, FSType: "erofs"}, &RootImage{Name: "j", Path: a2, FSType: "erofs"}, true},
	} {
		t.Run("image: "+tt.name, func(t *testing.T) {
			if kx, ky := imageKey(t, tt.x), imageKey(t, tt.y); (kx == ky) != tt.same {
				t.Errorf("got keys %s and %s; want them the same: %v", kx, ky, tt.same)
			}
		})
	}
	// Forwarded host ports are the machine's own; the user-mode NIC is
	// the shape's.
	fwd := func(f ...qemu.Forward) string {
		q := base
		q.UserNet = &qemu.UserNet{Forwards: f}
		return key(t, q)
	}
	if x, y := fwd(qemu.Forward{HostPort: 8080, GuestPort: 80}), fwd(qemu.Forward{HostPort: 9090, GuestPort: 80}, qemu.Forward{HostPort: 2222, GuestPort: 22}); x != y || x != fwd() {
		t.Errorf("forwards change the key: got %s, %s and %s without any", x, y, fwd())
	}
	if imageKey(t, &RootImage{Name: "i", Path: a, FSType: "erofs"}) == want {
		t.Errorf("a machine with an image has the key of one without")
	}
}

// TestCPUIdentity checks that the KVM key's host CPU is the first
// processor's model and flags, without what changes from one reading to
// the next (its current frequency).
func TestCPUIdentity(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n" +
		"model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nstepping\t: 4\ncpu MHz\t\t: 2394.123\nflags\t\t: fpu vme avx512f\n\n" +
		"processor\t: 1\nvendor_id\t: GenuineIntel\nflags\t\t: fpu\n"
	want := "vendor_id=GenuineIntel; cpu family=6; model=85; model name=Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz; stepping=4; flags=fpu vme avx512f"
	if got := cpuIdentity(strings.NewReader(info)); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tt := range []struct{ kHz, mhz int64 }{{2_394_123, 2400}, {2_401_900, 2400}, {2_995_200, 3000}} {
		if got := roundTSCMHz(tt.kHz); got != tt.mhz {
			t.Errorf("roundTSCMHz(%d) = %d, want %d", tt.kHz, got, tt.mhz)
		}
	}
}

// TestSumMemory: a memory file's sum reads only its data and does not
// depend on how its zeros are stored (a hole or written zeros), but on
// every byte of it, holes' included, and on its size.
func TestSumMemory(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64, at map[int64][]byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for off, b := range at {
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	const mib = 1 << 20
	page := bytes.Repeat([]byte{0xab}, memPage)
	sparse := write("sparse", 8*mib, map[int64][]byte{0: page, 5 * mib: page})
	zeros := write("zeros", 8*mib, map[int64][]byte{0: page, 5 * mib: page, 2 * mib: make([]byte, mib)})
	moved := write("moved", 8*mib, map[int64][]byte{0: page, 6 * mib: page})
	inHole := write("inhole", 8*mib, map[int64][]byte{0: page, 5 * mib: page, 3*mib + 17: {1}})
	longer := write("longer", 9*mib, map[int64][]byte{0: page, 5 * mib: page})
	sum := func(p string) string {
		t.Helper()
		s, _, err := sumSparse(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := sum(sparse)
	if got := sum(zeros); got != base {
		t.Errorf("written zeros: sum %.12s, want the hole's %.12s", got, base)
	}
	for _, p := range []string{moved, inHole, longer} {
		if sum(p) == base {
			t.Errorf("%s: same sum as a different file", filepath.Base(p))
		}
	}
	if _, n, _ := sumSparse(longer); n != 9*mib {
		t.Errorf("size: got %d, want %d", n, 9*mib)
	}
}

// TestCopyMemory: a take's memory, in memory while the machine boots, is
// written to the snapshot's file with the same bytes, its zero pages as
// holes, and with sumSparse's sum of it: runs of pages across the reader's
// buffer, zero pages between data, a last page that is not whole.
func TestCopyMemory(t *testing.T) {
	src, err := takeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const size = 3<<20 + 100
	want := make([]byte, size)
	fill := func(off, n int) {
		for i := off; i < off+n; i++ {
			want[i] = byte(i%251 + 1)
		}
	}
	fill(0, 2*memPage)               // the first pages
	fill(256<<10-memPage, 3*memPage) // a run across the reader's 256 KiB buffer
	fill(1<<20+memPage/2, 10)        // one byte range in a page
	fill(size-50, 50)                // the last, part of a page
	// Written zeros: the source stores them, the copy must not.
	if _, err := src.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), snapRAM))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	sum, n, err := copyPages(dst, src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst.Name())
	if err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(got, want) {
		t.Errorf("the copy has %d bytes (size %d), equal %v; want %d, equal", len(got), n, bytes.Equal(got, want), size)
	}
	if again, _, err := sumSparse(dst.Name()); err != nil || again != sum {
		t.Errorf("sumSparse of the copy: %.12s, %v; copyPages said %.12s", again, err, sum)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(dst.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if data := 7 * memPage; st.Blocks*512 > int64(2*data) {
		t.Errorf("the copy holds %d bytes of blocks; its data is %d bytes: zero pages were written", st.Blocks*512, data)
	}
}

// TestKeyKernelArgs: the TSC figure, measured again by every process,
// counts to the MHz in a snapshot's key (two runs 1 kHz apart had made two
// snapshots of one shape); the other arguments count as they are.
func TestKeyKernelArgs(t *testing.T) {
	key := func(khz string) string {
		return strings.Join(keyKernelArgs([]string{"console=ttyS0", "tsc_early_khz=" + khz, "quiet"}), " ")
	}
	if a, b := key("2299997"), key("2299998"); a != b {
		t.Errorf("1 kHz apart: %q and %q, want one key", a, b)
	}
	if a, b := key("2299997"), key("2301997"); a == b {
		t.Errorf("2 MHz apart: both %q, want two keys", a)
	}
	if got := key("2299997"); got != "console=ttyS0 tsc_mhz=2300 quiet" {
		t.Errorf("got %q", got)
	}
}

// TestRoomToRestore: a memory file on a tmpfs with less room than its
// holes is not restored from (a restored QEMU died of SIGBUS mid-test when
// the tmpfs filled); another file system, or a tmpfs with room, is.
func TestRoomToRestore(t *testing.T) {
	dir := t.TempDir()
	ram := filepath.Join(dir, snapRAM)
	if err := os.WriteFile(ram, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ram, 64<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(ram)
	if err != nil {
		t.Fatal(err)
	}
	defer func(f func(string, *unix.Statfs_t) error) { statfs = f }(statfs)
	for _, tt := range []struct {
		name    string
		fsType  int64
		freeMiB int64
		refused bool
	}{
		{"tmpfs, full", tmpfsMagic, 10, true},
		{"tmpfs, room", tmpfsMagic, 100, false},
		{"ext4, full", 0xef53, 0, false},
	} {
		statfs = func(path string, st *unix.Statfs_t) error {
			*st = unix.Statfs_t{Type: tt.fsType, Bsize: 4096, Bavail: uint64(tt.freeMiB << 20 / 4096)}
			return nil
		}
		err := roomToRestore(dir, fi)
		if (err != nil) != tt.refused || err != nil && !strings.Contains(err.Error(), "tmpfs with 10 MiB free") {
			t.Errorf("%s: got %v, want refused %v", tt.name, err, tt.refused)
		}
	}
}
