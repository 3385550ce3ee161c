package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/hostview"
)

// Config describes one VM. The zero values of optional fields are documented;
// Args turns a Config into QEMU's command line.
type Config struct {
	// Binary is the QEMU executable; empty means qemu-system-x86_64 on PATH.
	Binary string
	Accel  Accel
	// MemoryMiB defaults to 512; CPUs to 1.
	MemoryMiB int
	CPUs      int
	// Kernel is an uncompressed vmlinux with a PVH note; Initrd a cpio
	// archive; Append the kernel command line.
	Kernel, Initrd, Append string
	// Dir is the machine's private directory (mode 0700) for sockets.
	Dir string
	// Shares are host directories exported to the guest over FS.
	Shares []Share
	// FS is the transport of Shares: "virtiofs" (one virtiofsd per share,
	// started and supervised with QEMU; needs root), or 9p when empty.
	FS string
	// View is what QEMU and virtiofsd see of the host's root: its binds are
	// mounted in their private mount namespace (needs CAP_SYS_ADMIN), and
	// Shares already name its sources (View.Source). Nil: the host as it is.
	View *hostview.View
	// Virtiofsd is the virtiofsd executable; empty: FindVirtiofsd.
	Virtiofsd string
	// Firmware replaces SeaBIOS when set (qboot boots faster), except
	// under a window (see window).
	Firmware string
	// Extra arguments appended last.
	Extra []string
	// NICs are the machine's cards on virtual switches; UserNet, when set,
	// adds a user-mode NIC for port forwarding only.
	NICs    []NIC
	UserNet *UserNet
	// Display adds an emulated display: QEMU's standard VGA, which the
	// guest's bochs DRM driver runs. No window opens (-nographic); QMP's
	// screendump and send-key reach it. False: no display device at all.
	Display bool
	// Screen shows the display to the host as well (VNC or a window);
	// ScreenNone: it is seen through screendump only. Ignored without
	// Display.
	Screen Screen
	// Name is the machine's, for the window's title and the VNC desktop.
	Name string
	// Disk is the machine's own disk, its writable root; nil: none. It
	// comes after Extra, so the extra disks Extra adds keep /dev/vda, ...
	Disk *Disk
	// FreePageReporting adds a virtio balloon that only reports free
	// pages (FreePageReportingArgs): memory the guest frees goes back to
	// the host. The guest needs the virtio_balloon module loaded. False:
	// no balloon; what a guest once touched stays with QEMU until it exits.
	FreePageReporting bool
	// Image is the read-only root image the guest's root is made of
	// instead of the host's directories (Disk.ReadOnly); nil: none. It
	// comes after Disk, so extra disks keep their names.
	Image *Disk
	// RAM puts the guest's memory in a file (snapshot boots,
	// docs/snapshots.md); nil: anonymous memory.
	RAM *RAMFile
	// Incoming starts QEMU waiting for a migration's state (-incoming
	// defer): the machine is restored from it (QMP migrate-incoming) and
	// runs on once it is loaded. False: a boot.
	Incoming bool
	// IncomingState is the file of the state an Incoming QEMU loads:
	// QEMU inherits it, after the NICs' files, and reads it when sent
	// migrate-incoming with IncomingURI. Nil: the state comes another way.
	IncomingState *os.File
}

// files returns the files QEMU inherits, in order from descriptor 3
// (exec.Cmd.ExtraFiles): the NICs', then the incoming state's.
func (c Config) files() []*os.File {
	files := c.nicFiles()
	if c.IncomingState != nil {
		files = append(files, c.IncomingState)
	}
	return files
}

// IncomingURI is the migration URI under which QEMU reads IncomingState:
// its inherited descriptor. A descriptor rather than a command (exec:cat
// FILE) spares a shell and a cat per restore (10-15 ms here), and QEMU
// reads the very file the driver checked, not whatever has its name when
// the load starts.
func (c Config) IncomingURI() string {
	return fmt.Sprintf("fd:%d", 3+len(c.nicFiles()))
}

// RAMFile is a file the guest's memory is mapped from. Migrations skip
// it when both ends set QEMU's x-ignore-shared capability: the file is
// the memory. Shared maps it MAP_SHARED, so what the guest writes is in
// the file (the machine a snapshot is taken of); else MAP_PRIVATE, so
// the guest's writes are its own copies and the pages it never writes
// are the file's, in the host's page cache once for every machine.
type RAMFile struct {
	Path   string
	Shared bool
}

// args returns the memory backend's and the migration's arguments and
// what to add to -machine.
func (r *RAMFile) args(mem int) (args []string, machine string) {
	share := "off"
	if r.Shared {
		share = "on"
	}
	return []string{
		"-object", fmt.Sprintf("memory-backend-file,id=vmlab.ram,size=%dM,mem-path=%s,share=%s", mem, escape(r.Path), share),
	}, ",memory-backend=vmlab.ram"
}

// FreePageReportingArgs add a virtio balloon device that is never inflated
// and only has the guest report the free pages it gathers (blocks of 2 MiB
// on x86-64, a few seconds after they are freed; the guest kernel needs
// CONFIG_PAGE_REPORTING, which Debian's has, and the virtio_balloon
// module): QEMU then discards them, and the host gets the memory back.
// QEMU 5.1 and later have the property.
var FreePageReportingArgs = []string{"-device", "virtio-balloon-pci,free-page-reporting=on"}

// Disk is a raw disk image the guest finds by its serial.
type Disk struct {
	Path   string
	Serial string
	// Cache is QEMU's cache mode: "unsafe" ignores the guest's flushes
	// (what the guest wrote still reaches the host's page cache at once,
	// so a killed QEMU loses nothing; a host crash may), "writeback"
	// passes them on as fdatasync.
	Cache string
	// ReadOnly attaches the image read-only (readonly=on): the guest
	// cannot write it, and any number of machines may use the file at
	// once. Cache is then best "none" or "writeback" (no write happens).
	ReadOnly bool
}

// args returns the drive and its device. A full or failing image is
// reported to the guest as ENOSPC or EIO (werror=report, rerror=report)
// instead of pausing the VM, QEMU's default, which would hang the test.
func (d *Disk) args(id string) []string {
	drive := []string{"file=" + escape(d.Path), "format=raw", "if=none", "id=" + id,
		"cache=" + d.Cache, "werror=report", "rerror=report"}
	if d.ReadOnly {
		// QEMU takes a shared lock on a read-only image, so other
		// machines may open the same file read-only at the same time.
		drive = append(drive, "readonly=on")
	} else {
		drive = append(drive, "discard=unmap")
	}
	return []string{"-drive", strings.Join(drive, ","),
		"-device", "virtio-blk-pci,drive=" + id + ",serial=" + escape(d.Serial)}
}

// Share is a host directory the guest mounts by tag.
type Share struct {
	Tag      string
	HostPath string
	ReadOnly bool
	// Static says the tree does not change while the machine runs, so the
	// guest may cache it without asking again. Over virtiofs that is
	// virtiofsd's cache=always (else auto); 9p's equivalent, cache=loose, is
	// a guest mount option.
	Static bool
}

// Socket paths in Dir. QEMU connects to them as a client; the driver listens
// on them before QEMU starts, so there is nothing to poll for.
func (c Config) qmpSocket() string   { return filepath.Join(c.Dir, "qmp.sock") }
func (c Config) agentSocket() string { return filepath.Join(c.Dir, "agent.sock") }

// ErrNoQEMU says QEMU is not installed.
var ErrNoQEMU = errors.New("qemu-system-x86_64 not found on PATH (Debian/Ubuntu: apt-get install qemu-system-x86)")

// Find returns the QEMU executable: path when set (it must exist), else
// qemu-system-x86_64 from PATH.
func Find(path string) (string, error) {
	if path == "" {
		p, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			return "", ErrNoQEMU
		}
		return p, nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("find qemu: %w", err)
	}
	return path, nil
}

// Args returns QEMU's arguments (without the executable).
//
// Boot-time choices, measured under TCG on a 2-core host (DESIGN.md): direct
// PVH boot of an uncompressed vmlinux (no decompression in the guest: -5 s),
// -nodefaults (no VGA, no NIC, so no option ROMs to scan), the console on the
// first serial port, -no-reboot so a guest reboot or panic ends the process
// and the driver sees it at once.
func (c Config) Args() []string {
	mem, cpus := c.MemoryMiB, c.CPUs
	if mem <= 0 {
		mem = 512
	}
	if cpus <= 0 {
		cpus = 1
	}
	cpu, machine := "qemu64", "q35,accel=tcg"
	if c.Accel.Name == "kvm" {
		cpu, machine = "host", "q35,accel=kvm"
	}
	var ramArgs []string
	if c.RAM != nil {
		var more string
		ramArgs, more = c.RAM.args(mem)
		machine += more
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", machine, "-cpu", cpu,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.Append,
		// The console: QEMU's stdout, read line by line by the driver.
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-chardev", "socket,id=qmp,path=" + escape(c.qmpSocket()),
		"-mon", "chardev=qmp,mode=control",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + escape(c.agentSocket()),
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + agentproto.PortName,
		// A hardware RNG fed from the host's /dev/urandom, as NixOS gives
		// every test VM: without it a guest's kernel RNG took 71 s to be
		// ready under TCG, and WireGuard dropped handshakes meanwhile.
		"-object", "rng-random,id=rng0,filename=/dev/urandom",
		"-device", "virtio-rng-pci,rng=rng0",
	}
	// Never with a memory file (a snapshot's take and its restores): QEMU
	// discards a reported page of file-backed memory by punching a hole
	// in the file, even when it is mapped privately, and so would zero
	// the snapshot's memory under every machine restored from it.
	if c.FreePageReporting && c.RAM == nil {
		args = append(args, FreePageReportingArgs...)
	}
	args = append(args, ramArgs...)
	if c.Incoming {
		args = append(args, "-incoming", "defer")
	}
	if c.Firmware != "" && !c.window() {
		args = append(args, "-bios", c.Firmware)
	}
	if c.FS == "virtiofs" {
		args = append(args, c.virtiofsArgs(mem)...)
	} else {
		args = append(args, c.ninepArgs()...)
	}
	args = append(args, c.nicArgs()...)
	if c.Display {
		args = append(args, "-device", "VGA,id=display")
	}
	args = append(args, c.screenArgs()...)
	args = append(args, c.Extra...)
	if c.Disk != nil {
		args = append(args, c.Disk.args("rootdisk")...)
	}
	if c.Image != nil {
		args = append(args, c.Image.args("rootimage")...)
	}
	return args
}

// ninepArgs returns the devices for the shares over 9p, served by QEMU
// itself.
func (c Config) ninepArgs() []string {
	var args []string
	for i, s := range c.Shares {
		id := fmt.Sprintf("fs%d", i)
		opts := []string{"local", "id=" + id, "path=" + escape(s.HostPath), "security_model=none", "multidevs=remap"}
		if s.ReadOnly {
			opts = append(opts, "readonly=on")
		}
		args = append(args, "-fsdev", strings.Join(opts, ","),
			"-device", "virtio-9p-pci,fsdev="+id+",mount_tag="+s.Tag)
	}
	return args
}

// escape doubles commas, QEMU's way of putting one inside an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
