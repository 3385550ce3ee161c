package initramfs

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/vmlab/vmlab/internal/cachefile"
)

// BuildFloor writes the "floor" initramfs to cacheDir unless it is there
// already, and returns its path. Its /init powers the machine off the moment
// it runs, so booting it measures the kernel alone: the floor under any boot
// time vmlab can reach with that kernel and those QEMU flags. Here (2 cores,
// TCG, QEMU 7.2, Debian 6.1 vmlinux through PVH, q35, -m 256) QEMU exits
// ~2.0 s after it starts, the guest's clock reading ~1.8 s at power-off.
func BuildFloor(cacheDir string) (string, error) {
	var buf bytes.Buffer
	cw := NewWriter(&buf)
	cw.Dir("dev", 0o755)
	cw.CharDev("dev/console", 0o600, 5, 1)
	cw.File("init", 0o755, floorInit())
	if err := cw.Close(); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(cacheDir, "initramfs-floor-"+hex.EncodeToString(sum[:])+".cpio")
	if err := cachefile.UseBytes(path, buf.Bytes()); err != nil {
		return "", fmt.Errorf("write floor initramfs %s: %w", path, err)
	}
	return path, nil
}

// floorCode is the floor's whole program, x86-64 machine code assembled by
// hand. A 32-bit mov zero-extends into the full register, and the kernel
// reads reboot's arguments as 32-bit ints, so 5-byte moves suffice.
var floorCode = []byte{
	0xb8, 0xa9, 0x00, 0x00, 0x00, // mov eax, 169        ; syscall number of reboot
	0xbf, 0xad, 0xde, 0xe1, 0xfe, // mov edi, 0xfee1dead ; LINUX_REBOOT_MAGIC1
	0xbe, 0x69, 0x19, 0x12, 0x28, // mov esi, 0x28121969 ; LINUX_REBOOT_MAGIC2
	0xba, 0xdc, 0xfe, 0x21, 0x43, // mov edx, 0x4321fedc ; LINUX_REBOOT_CMD_POWER_OFF
	0x0f, 0x05, // syscall             ; reboot(MAGIC1, MAGIC2, POWER_OFF) does not return on success
	0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60         ; syscall number of exit, if reboot failed
	0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1          ; exit status 1
	0x0f, 0x05, // syscall             ; exit(1): PID 1 exiting panics the kernel; panic=-1 and -no-reboot then end QEMU
	0xeb, 0xfe, // jmp $               ; not reached; spin rather than run off the end
}

// floorBase is where the floor's single segment is mapped; any page-aligned
// address above vm.mmap_min_addr (64 KiB) would do.
const floorBase = 0x400000

// floorInit returns a static x86-64 ELF executable: the ELF header, one
// PT_LOAD program header mapping the whole file read+execute at floorBase,
// then floorCode, which is the entry point.
func floorInit() []byte {
	const ehsize, phsize = 64, 56
	const codeOff = ehsize + phsize
	size := uint64(codeOff + len(floorCode))
	hdr := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     floorBase + codeOff,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     1,
	}
	prog := elf.Prog64{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Off:    0,
		Vaddr:  floorBase,
		Paddr:  floorBase,
		Filesz: size,
		Memsz:  size,
		Align:  0x1000,
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, prog)
	b.Write(floorCode)
	return b.Bytes()
}
