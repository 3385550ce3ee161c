package unpack

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"sync"

	"github.com/ulikunitz/xz/lzma"
)

// The xz container is parsed here rather than by github.com/ulikunitz/xz
// because that package supports only the LZMA2 filter, and Debian's kernel
// payload is "--x86 --lzma2=dict=32MiB" (xz -lvv on vmlinuz-6.1.0-56-amd64).
// ulikunitz/xz/lzma still decodes the LZMA2 data. Field layout from the .xz
// file format specification, https://tukaani.org/xz/xz-file-format.txt.

const (
	xzStreamHeaderLen = 12
	xzFilterX86       = 0x04
	xzFilterLZMA2     = 0x21
	xzCheckNone       = 0x00
	xzCheckCRC32      = 0x01
	xzCheckCRC64      = 0x04
	xzCheckSHA256     = 0x0a
)

// crc64Table is made on first use: the guest's agent is this same binary and
// runs every package's init at each boot.
var crc64Table = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ECMA) })

// decodeXZ decodes the blocks of the first xz stream in data. It stops at the
// stream's index, whose sizes the per-block checks already cover.
func decodeXZ(data []byte, sizeHint int) ([]byte, error) {
	check, err := parseXZStreamHeader(data)
	if err != nil {
		return nil, fmt.Errorf("read xz stream header: %w", err)
	}
	var out []byte
	pos := xzStreamHeaderLen
	for i := 0; ; i++ {
		if pos >= len(data) {
			return nil, fmt.Errorf("read xz block %d: %w", i, io.ErrUnexpectedEOF)
		}
		if data[pos] == 0 { // index indicator: no more blocks
			return out, nil
		}
		block, n, err := decodeXZBlock(data[pos:], check, sizeHint-len(out))
		if err != nil {
			return nil, fmt.Errorf("decode xz block %d: %w", i, err)
		}
		if out == nil {
			out = block // the usual single block: no copy
		} else {
			out = append(out, block...)
		}
		pos += n
	}
}

// parseXZStreamHeader checks the magic bytes, flags and CRC and returns the
// stream's check type.
func parseXZStreamHeader(data []byte) (byte, error) {
	if len(data) < xzStreamHeaderLen {
		return 0, io.ErrUnexpectedEOF
	}
	flags := data[6:8]
	if crc32.ChecksumIEEE(flags) != le32(data[8:12]) {
		return 0, errors.New("header checksum mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return 0, fmt.Errorf("reserved stream flags set (% x)", flags)
	}
	return flags[1], nil
}

// xzBlockHeader is what decoding needs from a block header.
type xzBlockHeader struct {
	size         int   // bytes in the header itself
	compressed   int64 // size of the compressed data, or -1 when not stored
	uncompressed int64 // size of the decoded data, or -1 when not stored
	dictCap      int   // LZMA2 dictionary size
	x86          bool  // the x86 branch filter sits before LZMA2
	x86Start     uint32
}

// decodeXZBlock decodes the block at the start of data and returns its output
// and the block's length including padding and check.
func decodeXZBlock(data []byte, check byte, sizeHint int) ([]byte, int, error) {
	h, err := parseXZBlockHeader(data)
	if err != nil {
		return nil, 0, err
	}
	// A bytes.Reader is an io.ByteReader, so the LZMA2 reader takes bytes
	// from it one chunk at a time and stops right after the end marker:
	// r.Len() then tells where the compressed data ended.
	r := bytes.NewReader(data[h.size:])
	lz, err := lzma.Reader2Config{DictCap: h.dictCap}.NewReader2(r)
	if err != nil {
		return nil, 0, fmt.Errorf("start lzma2: %w", err)
	}
	if h.uncompressed >= 0 {
		sizeHint = int(h.uncompressed)
	}
	out, err := readAll(lz, sizeHint)
	if err != nil {
		return nil, 0, fmt.Errorf("decompress lzma2: %w", err)
	}
	compressed := len(data) - h.size - r.Len()
	if err := h.checkSizes(compressed, len(out)); err != nil {
		return nil, 0, err
	}
	if h.x86 {
		unfilterX86(out, h.x86Start)
	}
	n, err := verifyXZCheck(data, h.size+compressed, check, out)
	return out, n, err
}

func (h xzBlockHeader) checkSizes(compressed, uncompressed int) error {
	if h.compressed >= 0 && int64(compressed) != h.compressed {
		return fmt.Errorf("compressed size is %d, header says %d", compressed, h.compressed)
	}
	if h.uncompressed >= 0 && int64(uncompressed) != h.uncompressed {
		return fmt.Errorf("uncompressed size is %d, header says %d", uncompressed, h.uncompressed)
	}
	return nil
}

// verifyXZCheck skips the block padding that follows data[:end], compares the
// block's check with out, and returns the offset just past the check.
func verifyXZCheck(data []byte, end int, check byte, out []byte) (int, error) {
	padded := (end + 3) &^ 3
	size := xzCheckSize(check)
	if padded+size > len(data) {
		return 0, fmt.Errorf("read block check: %w", io.ErrUnexpectedEOF)
	}
	if !allZero(data[end:padded]) {
		return 0, errors.New("nonzero block padding")
	}
	stored := data[padded : padded+size]
	var ok bool
	switch check {
	case xzCheckCRC32:
		ok = le32(stored) == crc32.ChecksumIEEE(out)
	case xzCheckCRC64:
		ok = binary.LittleEndian.Uint64(stored) == crc64.Checksum(out, crc64Table())
	case xzCheckSHA256:
		sum := sha256.Sum256(out)
		ok = bytes.Equal(stored, sum[:])
	default: // none, or a check type the format lets decoders skip
		ok = true
	}
	if !ok {
		return 0, fmt.Errorf("block check (type %#x) mismatch: data is corrupt", check)
	}
	return padded + size, nil
}

// xzCheckSize returns the size of a check field: 0 for none, then 4, 8, 16,
// 32 and 64 bytes for each group of three type IDs.
func xzCheckSize(check byte) int {
	if check == xzCheckNone {
		return 0
	}
	return 4 << ((check - 1) / 3)
}

// parseXZBlockHeader reads the header's sizes and filter chain. It accepts
// LZMA2 alone or preceded by the x86 filter, which is what kernels and
// modules use.
func parseXZBlockHeader(data []byte) (xzBlockHeader, error) {
	h := xzBlockHeader{size: (int(data[0]) + 1) * 4, compressed: -1, uncompressed: -1}
	if len(data) < h.size {
		return h, fmt.Errorf("read block header: %w", io.ErrUnexpectedEOF)
	}
	raw := data[:h.size-4]
	if crc32.ChecksumIEEE(raw) != le32(data[h.size-4:h.size]) {
		return h, errors.New("block header checksum mismatch")
	}
	flags := raw[1]
	if flags&0x3c != 0 {
		return h, fmt.Errorf("reserved block flags set (%#x)", flags)
	}
	c := xzCursor{b: raw[2:]}
	if flags&0x40 != 0 {
		h.compressed = int64(c.uvarint())
	}
	if flags&0x80 != 0 {
		h.uncompressed = int64(c.uvarint())
	}
	nfilters := int(flags&3) + 1
	for i := range nfilters {
		if err := h.addFilter(&c, i == nfilters-1); err != nil {
			return h, err
		}
	}
	if c.err != nil {
		return h, fmt.Errorf("read block header: %w", c.err)
	}
	if !allZero(c.b) {
		return h, errors.New("nonzero block header padding")
	}
	return h, nil
}

// addFilter reads one filter's flags; last is true for the final filter,
// which must be LZMA2.
func (h *xzBlockHeader) addFilter(c *xzCursor, last bool) error {
	id := c.uvarint()
	props := c.next(int(c.uvarint()))
	switch {
	case c.err != nil:
		return fmt.Errorf("read filter flags: %w", c.err)
	case last && id == xzFilterLZMA2 && len(props) == 1:
		dictCap, err := lzma.DecodeDictCap(props[0])
		if err != nil {
			return fmt.Errorf("read lzma2 dictionary size: %w", err)
		}
		h.dictCap = int(max(dictCap, lzma.MinDictCap))
		return nil
	case !last && !h.x86 && id == xzFilterX86 && (len(props) == 0 || len(props) == 4):
		h.x86 = true
		if len(props) == 4 {
			h.x86Start = le32(props)
		}
		return nil
	default:
		return fmt.Errorf("%w: xz filter %#x with %d property bytes at this position (only x86 then lzma2 are supported)", ErrUnsupported, id, len(props))
	}
}

// xzCursor reads the multibyte integers of a block header; the first error
// sticks.
type xzCursor struct {
	b   []byte
	err error
}

// uvarint reads an xz multibyte integer, which has the same encoding as
// encoding/binary's unsigned varint.
func (c *xzCursor) uvarint() uint64 {
	if c.err != nil {
		return 0
	}
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.err = errors.New("bad multibyte integer")
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *xzCursor) next(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n > len(c.b) {
		c.err = io.ErrUnexpectedEOF
		return nil
	}
	b := c.b[:n]
	c.b = c.b[n:]
	return b
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
