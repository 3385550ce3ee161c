package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	cfg := Config{
		Accel: Accel{Name: "tcg"}, Kernel: "/k", Initrd: "/i", Append: "console=ttyS0",
		Dir:    "/run/a,b",
		Shares: []Share{{Tag: "vmlab0", HostPath: "/usr", ReadOnly: true}},
	}
	args := strings.Join(cfg.Args(), " ")
	for _, want := range []string{
		"-nodefaults", "-no-reboot", "-machine q35,accel=tcg", "-cpu qemu64", "-m 512", "-smp 1",
		"-kernel /k -initrd /i -append console=ttyS0",
		"socket,id=qmp,path=/run/a,,b/qmp.sock", // a comma in a path is doubled
		"name=org.vmlab.agent",
		"local,id=fs0,path=/usr,security_model=none,multidevs=remap,readonly=on",
		"virtio-9p-pci,fsdev=fs0,mount_tag=vmlab0",
		"-object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	// The machine's disk: after everything else, so the extra disks in
	// Extra keep /dev/vda; errors reported to the guest, never a pause.
	disk := Config{Extra: []string{"-drive", "file=/x.img,id=disk0"},
		Disk: &Disk{Path: "/m,1/root.img", Serial: "vmlab-root", Cache: "unsafe"}}.Args()
	if i := slices.Index(disk, "file=/x.img,id=disk0"); i < 0 || i+5 > len(disk) ||
		disk[i+2] != "file=/m,,1/root.img,format=raw,if=none,id=rootdisk,cache=unsafe,werror=report,rerror=report,discard=unmap" ||
		disk[i+4] != "virtio-blk-pci,drive=rootdisk,serial=vmlab-root" {
		t.Errorf("disk args: got %q, want the extra disk, then the machine's with werror=report", disk)
	}
	// A root image: read-only, shared with other machines, after the disk.
	img := Config{Disk: &Disk{Path: "/m/root.img", Serial: "vmlab-root", Cache: "unsafe"},
		Image: &Disk{Path: "/c/deb.erofs", Serial: "vmlab-image", Cache: "none", ReadOnly: true}}.Args()
	if i := slices.Index(img, "virtio-blk-pci,drive=rootdisk,serial=vmlab-root"); i < 0 || i+4 >= len(img) ||
		img[i+2] != "file=/c/deb.erofs,format=raw,if=none,id=rootimage,cache=none,werror=report,rerror=report,readonly=on" ||
		img[i+4] != "virtio-blk-pci,drive=rootimage,serial=vmlab-image" {
		t.Errorf("image args: got %q, want the machine's disk, then the image read-only", img)
	}
	kvm := Config{Accel: Accel{Name: "kvm"}}.Args()
	if !slices.Contains(kvm, "host") || !slices.Contains(kvm, "q35,accel=kvm") {
		t.Errorf("kvm args: got %q, want -cpu host and accel=kvm", kvm)
	}
}

func TestFind(t *testing.T) {
	if _, err := Find("/nonexistent/qemu"); err == nil || !strings.Contains(err.Error(), "/nonexistent/qemu") {
		t.Errorf("got %v, want an error naming the path", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Find(""); !errors.Is(err, ErrNoQEMU) {
		t.Errorf("got %v, want ErrNoQEMU", err)
	}
}

func TestTail(t *testing.T) {
	var tl tail
	if tl.String() != "" {
		t.Errorf("empty tail: got %q", tl.String())
	}
	tl.Write([]byte(strings.Repeat("x", tailSize)))
	tl.Write([]byte("\nlast line\n"))
	if s := tl.String(); !strings.HasSuffix(s, "last line") || len(s) > tailSize+2 {
		t.Errorf("got %d bytes ending %q", len(s), s[len(s)-12:])
	}
}

// TestArgsDisplay: a display is QEMU's standard VGA, still without a
// window; without one there is no display device at all.
func TestArgsDisplay(t *testing.T) {
	with := strings.Join(Config{Display: true}.Args(), " ")
	if !strings.Contains(with, "-device VGA,id=display") || !strings.Contains(with, "-nographic") {
		t.Errorf("args with a display: got %s, want -device VGA and -nographic", with)
	}
	without := strings.Join(Config{}.Args(), " ")
	if strings.Contains(without, "VGA") {
		t.Errorf("args without a display: got %s, want no VGA", without)
	}
}

func TestArgsFreePageReporting(t *testing.T) {
	with := strings.Join(Config{FreePageReporting: true}.Args(), " ")
	if !strings.Contains(with, "-device virtio-balloon-pci,free-page-reporting=on") {
		t.Errorf("args with free page reporting: got %s, want a virtio balloon reporting free pages", with)
	}
	// A memory file (a snapshot) never gets the balloon: a reported page
	// would be a hole punched in the snapshot's memory.
	snap := Config{FreePageReporting: true, RAM: &RAMFile{Path: "/c/ram"}, Incoming: true}
	if got := strings.Join(snap.Args(), " "); strings.Contains(got, "balloon") {
		t.Errorf("args of a restore: got %s, want no balloon", got)
	}
	if without := strings.Join(Config{}.Args(), " "); strings.Contains(without, "balloon") {
		t.Errorf("args without free page reporting: got %s, want no balloon", without)
	}
}

// TestRAMFileArgs checks a snapshot boot's memory file (shared: the
// guest's writes land in it) and a restore's (private, with -incoming
// defer), and that a plain boot has neither.
func TestRAMFileArgs(t *testing.T) {
	base := Config{Kernel: "k", Initrd: "i", Dir: "/d", MemoryMiB: 256}
	plain := strings.Join(base.Args(), " ")
	if strings.Contains(plain, "memory-backend") || strings.Contains(plain, "-incoming") {
		t.Errorf("a plain boot: %s", plain)
	}
	take := base
	take.RAM = &RAMFile{Path: "/c/ram,x", Shared: true}
	got := strings.Join(take.Args(), " ")
	for _, want := range []string{"q35,accel=tcg,memory-backend=vmlab.ram",
		"memory-backend-file,id=vmlab.ram,size=256M,mem-path=/c/ram,,x,share=on"} {
		if !strings.Contains(got, want) {
			t.Errorf("a snapshot boot: %s lacks %s", got, want)
		}
	}
	restore := base
	restore.RAM, restore.Incoming = &RAMFile{Path: "/c/ram"}, true
	got = strings.Join(restore.Args(), " ")
	for _, want := range []string{"mem-path=/c/ram,share=off", "-incoming defer"} {
		if !strings.Contains(got, want) {
			t.Errorf("a restore: %s lacks %s", got, want)
		}
	}
}
