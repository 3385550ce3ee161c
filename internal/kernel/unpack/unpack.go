// Package unpack decompresses the formats Linux distributions use for kernel
// images and modules: gzip, xz (with the x86 branch filter that kernel images
// use) and zstd. The format is recognised by its magic bytes, never by a file
// name.
//
// Call Decode with the whole compressed input in memory: kernel payloads are
// ~8 MB and modules far smaller, and the xz branch filter needs the whole
// output anyway. Decode reads only the first gzip member, xz stream or zstd
// frame and ignores what follows, because kernel payloads end with four bytes
// of size that belong to none of the formats.
package unpack

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Format is a compression format recognised by its magic bytes.
type Format int

// The formats Detect knows. Only Gzip, XZ and Zstd can be decoded; the others
// are recognised so that errors can name them.
const (
	Unknown Format = iota
	Gzip
	XZ
	Zstd
	LZ4
	LZMA
	Bzip2
	LZO
)

var formatNames = [...]string{"unknown", "gzip", "xz", "zstd", "lz4", "lzma", "bzip2", "lzo"}

// String returns the format's usual name, such as "xz".
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// magics maps each format to the bytes its streams start with. The kernel's
// lz4 payloads use the legacy frame; its lzma payloads start with the
// properties byte 0x5d and a little-endian dictionary size.
var magics = []struct {
	format Format
	magic  string
}{
	{Gzip, "\x1f\x8b"},
	{XZ, "\xfd7zXZ\x00"},
	{Zstd, "\x28\xb5\x2f\xfd"},
	{LZ4, "\x02\x21\x4c\x18"},
	{LZMA, "\x5d\x00\x00"},
	{Bzip2, "BZh"},
	{LZO, "\x89LZO"},
}

// Detect returns the format data starts with, or Unknown.
func Detect(data []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(data, []byte(m.magic)) {
			return m.format
		}
	}
	return Unknown
}

// ErrUnsupported is wrapped by errors for formats Decode recognises but cannot
// decode, and for data in no known format.
var ErrUnsupported = errors.New("unsupported compression")

// Decode decompresses the first gzip member, xz stream or zstd frame in data
// and ignores any bytes after it. sizeHint, when positive, is the expected
// output size; it only saves reallocations.
func Decode(data []byte, sizeHint int) ([]byte, error) {
	switch f := Detect(data); f {
	case Gzip:
		return decodeGzip(data, sizeHint)
	case XZ:
		return decodeXZ(data, sizeHint)
	case Zstd:
		return decodeZstd(data, sizeHint)
	case Unknown:
		return nil, fmt.Errorf("%w: no known magic bytes (starts with % x)", ErrUnsupported, data[:min(len(data), 6)])
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, f)
	}
}

func decodeGzip(data []byte, sizeHint int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read gzip header: %w", err)
	}
	zr.Multistream(false)
	out, err := readAll(zr, sizeHint)
	if err != nil {
		return nil, fmt.Errorf("decompress gzip: %w", err)
	}
	return out, nil
}

// readAll is io.ReadAll with an initial capacity, so that a 60 MB kernel is
// not copied a dozen times while the buffer doubles.
func readAll(r io.Reader, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	if sizeHint > 0 {
		buf.Grow(sizeHint + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

func decodeZstd(data []byte, sizeHint int) ([]byte, error) {
	n, err := zstdFrameLen(data)
	if err != nil {
		return nil, fmt.Errorf("read zstd frame: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(data[:n], make([]byte, 0, max(sizeHint, 0)))
	if err != nil {
		return nil, fmt.Errorf("decompress zstd: %w", err)
	}
	return out, nil
}

// zstdFrameLen returns the length of the zstd frame at the start of data,
// found by walking its block headers (RFC 8878 section 3.1.1), so that the
// decoder never sees the bytes after it.
func zstdFrameLen(data []byte) (int, error) {
	var h zstd.Header
	if err := h.Decode(data); err != nil {
		return 0, err
	}
	if h.Skippable {
		return 0, errors.New("stream starts with a skippable frame")
	}
	n := h.HeaderSize
	for last := false; !last; {
		if n+3 > len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		bh := uint32(data[n]) | uint32(data[n+1])<<8 | uint32(data[n+2])<<16
		n += 3
		last = bh&1 == 1
		switch blockType, size := (bh>>1)&3, int(bh>>3); blockType {
		case 0, 2: // raw or compressed: size bytes follow
			n += size
		case 1: // RLE: one byte, repeated size times
			n++
		default:
			return 0, errors.New("reserved block type")
		}
	}
	if h.HasCheckSum {
		n += 4
	}
	if n > len(data) {
		return 0, io.ErrUnexpectedEOF
	}
	return n, nil
}

// le32 reads a little-endian uint32.
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
