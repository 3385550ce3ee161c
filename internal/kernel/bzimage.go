package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vmlab/vmlab/internal/kernel/unpack"
)

// Offsets in the x86 boot protocol's setup header, from the start of the
// bzImage (Documentation/arch/x86/boot.rst in the kernel tree).
const (
	offSetupSects    = 0x1f1 // setup sectors after the boot sector; 0 means 4
	offMagic         = 0x202 // "HdrS"
	offProtocol      = 0x206 // boot protocol version, e.g. 0x020f
	offKernelVersion = 0x20e // pointer to the version string, minus 0x200
	offPayloadOffset = 0x248 // payload offset from the protected-mode code
	offPayloadLength = 0x24c // payload length, including the size trailer
	setupHeaderEnd   = 0x250
)

// setupHeader is what Prepare needs from a bzImage.
type setupHeader struct {
	release string // first word of the kernel_version string
	payload []byte // compressed vmlinux followed by its 4-byte size
}

// parseSetupHeader locates the release string and the compressed payload.
func parseSetupHeader(data []byte) (setupHeader, error) {
	if len(data) < setupHeaderEnd || string(data[offMagic:offMagic+4]) != "HdrS" {
		return setupHeader{}, errors.New(`neither a bzImage (no "HdrS" at 0x202) nor an ELF vmlinux`)
	}
	if proto := le16(data, offProtocol); proto < 0x208 {
		return setupHeader{}, fmt.Errorf("boot protocol %d.%02d has no payload fields (need 2.08, kernel 2.6.26 or later)", proto>>8, proto&0xff)
	}
	rel, err := headerRelease(data)
	if err != nil {
		return setupHeader{}, err
	}
	setupSects := int(data[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(le32(data, offPayloadOffset))
	end := start + int(le32(data, offPayloadLength))
	if end-start < 4 || end > len(data) {
		return setupHeader{}, fmt.Errorf("payload at bytes %d-%d lies outside the %d-byte image", start, end, len(data))
	}
	return setupHeader{release: rel, payload: data[start:end]}, nil
}

// headerRelease returns the first word of the header's kernel_version
// string, "6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP ...".
func headerRelease(data []byte) (string, error) {
	ptr := int(le16(data, offKernelVersion))
	if ptr == 0 || ptr+0x200 >= len(data) {
		return "", fmt.Errorf("kernel_version pointer %#x is not in the image", ptr)
	}
	s, _, _ := strings.Cut(string(data[ptr+0x200:min(len(data), ptr+0x200+256)]), "\x00")
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "", errors.New("kernel_version string is empty")
	}
	return fields[0], nil
}

// decompressPayload returns the vmlinux inside the payload. Every payload
// ends with the uncompressed size as 4 little-endian bytes (gzip's own ISIZE
// field, or the size the kernel build appends after xz, zstd and the others);
// it sizes the output buffer and then confirms the result.
func decompressPayload(payload []byte) ([]byte, error) {
	size := le32(payload, len(payload)-4)
	out, err := unpack.Decode(payload, int(size))
	if errors.Is(err, unpack.ErrUnsupported) {
		return nil, fmt.Errorf("%w; pass an uncompressed vmlinux instead (the kernel tree's scripts/extract-vmlinux makes one)", err)
	}
	if err != nil {
		return nil, err
	}
	if uint32(len(out)) != size {
		return nil, fmt.Errorf("payload decompressed to %d bytes, its trailer says %d", len(out), size)
	}
	return out, nil
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
