package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/vmlab/vmlab/internal/compresstest"
)

const testRelease = "6.9.0-test"

// fakeVmlinux returns a small ELF executable for machine with one PT_NOTE
// segment holding a note (owner, typ), followed by a /proc/version banner.
func fakeVmlinux(machine elf.Machine, owner string, typ uint32) []byte {
	var note bytes.Buffer
	name := append([]byte(owner), 0)
	binary.Write(&note, binary.LittleEndian, [3]uint32{uint32(len(name)), 4, typ})
	note.Write(name)
	note.Write(make([]byte, (4-len(name)%4)%4))
	binary.Write(&note, binary.LittleEndian, uint32(0x1000000)) // entry address

	const ehsize, phsize = 64, 56
	hdr := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     0x1000000,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     1,
	}
	prog := elf.Prog64{
		Type:   uint32(elf.PT_NOTE),
		Off:    ehsize + phsize,
		Filesz: uint64(note.Len()),
		Memsz:  uint64(note.Len()),
		Align:  4,
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, prog)
	b.Write(note.Bytes())
	b.WriteString("Linux version %s\x00Linux version " + testRelease + " (builder@example) (gcc 12) #1 SMP\x00")
	return b.Bytes()
}

// pvhVmlinux is a fake vmlinux that Prepare accepts.
func pvhVmlinux() []byte { return fakeVmlinux(elf.EM_X86_64, "Xen", xenElfnotePhys32Entry) }

// fakeBzImage wraps payload (compressed data plus any size trailer) in a
// minimal setup header announcing release.
func fakeBzImage(release string, payload []byte) []byte {
	const setupSects, payloadOffset, versionAt = 1, 0x40, 0x300
	img := make([]byte, (setupSects+1)*512)
	img[offSetupSects] = setupSects
	copy(img[offMagic:], "HdrS")
	binary.LittleEndian.PutUint16(img[offProtocol:], 0x020f)
	binary.LittleEndian.PutUint16(img[offKernelVersion:], versionAt-0x200)
	copy(img[versionAt:], release+" (builder@example) #1 SMP PREEMPT_DYNAMIC\x00")
	binary.LittleEndian.PutUint32(img[offPayloadOffset:], payloadOffset)
	binary.LittleEndian.PutUint32(img[offPayloadLength:], uint32(len(payload)))
	img = append(img, bytes.Repeat([]byte{0xcc}, payloadOffset)...) // stands for the decompressor
	img = append(img, payload...)
	return append(img, bytes.Repeat([]byte{0xcc}, 100)...)
}

// withSize appends the 4-byte size the kernel build puts after xz, zstd, lz4
// and the other non-gzip payloads.
func withSize(compressed []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(compressed, uint32(size))
}

// The payloads as a bzImage carries them: xz and zstd followed by the
// uncompressed size; gzip's own ISIZE field is that trailer already.
func gzipPayload(t *testing.T, data []byte) []byte { return compresstest.Gzip(t, data) }
func xzPayload(t *testing.T, data []byte) []byte {
	return withSize(compresstest.XZ(t, data), len(data))
}
func zstdPayload(t *testing.T, data []byte) []byte {
	return withSize(compresstest.Zstd(t, data), len(data))
}
