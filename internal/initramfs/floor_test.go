package initramfs

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/kernel"
)

func TestFloorInitELF(t *testing.T) {
	data := floorInit()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse floor init: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC || f.OSABI != elf.ELFOSABI_NONE {
		t.Errorf("got %v %v %v %v, want ELFCLASS64 EM_X86_64 ET_EXEC ELFOSABI_NONE", f.Class, f.Machine, f.Type, f.OSABI)
	}
	var loads []*elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads = append(loads, p)
		case elf.PT_INTERP, elf.PT_DYNAMIC:
			t.Errorf("got a %v segment, want a static executable", p.Type)
		}
	}
	if len(loads) != 1 {
		t.Fatalf("got %d PT_LOAD segments, want 1", len(loads))
	}
	p := loads[0]
	if p.Flags&elf.PF_X == 0 || p.Vaddr%0x1000 != p.Off%0x1000 || p.Off+p.Filesz > uint64(len(data)) {
		t.Errorf("got segment flags %v vaddr %#x off %#x filesz %d in a %d-byte file, want an executable, page-congruent segment inside the file",
			p.Flags, p.Vaddr, p.Off, p.Filesz, len(data))
	}
	if f.Entry < p.Vaddr || f.Entry >= p.Vaddr+p.Filesz {
		t.Fatalf("got entry %#x, want it inside the segment [%#x, %#x)", f.Entry, p.Vaddr, p.Vaddr+p.Filesz)
	}
	if code := data[p.Off+f.Entry-p.Vaddr:]; !bytes.Equal(code, floorCode) {
		t.Errorf("got code % x at the entry point, want % x", code, floorCode)
	}
}

func TestBuildFloor(t *testing.T) {
	cache := t.TempDir()
	path, err := BuildFloor(cache)
	if err != nil {
		t.Fatal(err)
	}
	files := readBuilt(t, path)
	if e := files["init"]; e.mode != modeRegular|0o755 || !bytes.Equal(e.data, floorInit()) {
		t.Errorf("got /init mode %#o with %d bytes, want mode %#o and the floor init", e.mode, len(e.data), modeRegular|0o755)
	}
	if again, err := BuildFloor(cache); err != nil || again != path {
		t.Errorf("got %q, %v on the second call, want %q, nil", again, err, path)
	}
}

// TestFloorBoots boots the host kernel with the floor initramfs under QEMU
// and expects QEMU to exit by itself once /init powers the machine off.
func TestFloorBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; skipped in -short mode")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	image, err := kernel.Find("")
	if err != nil {
		t.Skipf("no host kernel: %v", err)
	}
	if f, err := os.Open(image); err != nil {
		t.Skipf("host kernel not readable: %v", err)
	} else {
		f.Close()
	}
	cache := t.TempDir()
	k, err := kernel.Prepare(image, "", cache)
	if err != nil {
		t.Fatal(err)
	}
	floor, err := BuildFloor(cache)
	if err != nil {
		t.Fatal(err)
	}
	// Generous: the floor boots in ~2 s here under TCG, but CI machines are
	// shared and slower ones exist.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-nodefaults", "-no-user-config", "-machine", "q35", "-cpu", "qemu64", "-m", "256",
		"-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", k.Vmlinux, "-initrd", floor,
		"-append", "console=ttyS0 panic=-1 tsc=reliable no_timer_check rodata=off mitigations=off nokaslr quiet")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("qemu: %v after %v\n%s", err, wall, out)
	}
	if !strings.Contains(string(out), "reboot: Power down") {
		t.Errorf("got console output without %q, want the floor's power-off:\n%s", "reboot: Power down", out)
	}
	t.Logf("floor boot of %s: QEMU exited after %v", k.Version, wall.Round(10*time.Millisecond))
}
