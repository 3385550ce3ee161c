package unpack

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/vmlab/vmlab/internal/compresstest"
)

// sample returns data that compresses somewhat but is not trivial.
func sample() []byte {
	var b bytes.Buffer
	for i := range 20000 {
		b.WriteString("line ")
		b.WriteByte(byte('a' + i%26))
		b.WriteByte(byte(i))
		b.WriteByte(byte(i >> 8))
	}
	return b.Bytes()
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want Format
	}{
		{"gzip", compresstest.Gzip(t, []byte("x")), Gzip},
		{"xz", compresstest.XZ(t, []byte("x")), XZ},
		{"zstd", compresstest.Zstd(t, []byte("x")), Zstd},
		{"lz4 legacy", []byte{0x02, 0x21, 0x4c, 0x18, 0, 0}, LZ4},
		{"bzip2", []byte("BZh91AY&SY"), Bzip2},
		{"elf", []byte("\x7fELF\x02\x01\x01"), Unknown},
		{"empty", nil, Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detect(tt.data); got != tt.want {
				t.Errorf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecode decodes each format followed by the four size bytes a kernel
// payload ends with, which Decode must ignore.
func TestDecode(t *testing.T) {
	data := sample()
	zeros := make([]byte, 300000) // zstd codes this as RLE blocks
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"gzip", compresstest.Gzip(t, data), data},
		{"xz", compresstest.XZ(t, data), data},
		{"zstd", compresstest.Zstd(t, data), data},
		{"zstd rle", compresstest.Zstd(t, zeros), zeros},
		{"empty xz", compresstest.XZ(t, nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(tt.in, 0xde, 0xad, 0xbe, 0xef)
			got, err := Decode(in, len(tt.want))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Decode returned %d bytes, want %d matching bytes", len(got), len(tt.want))
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	corrupt := compresstest.XZ(t, sample())
	corrupt[len(corrupt)/2] ^= 0x55
	tests := []struct {
		name        string
		in          []byte
		unsupported bool
	}{
		{"lz4", []byte{0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4}, true},
		{"unknown", []byte("hello world"), true},
		{"truncated xz", compresstest.XZ(t, sample())[:100], false},
		{"corrupt xz", corrupt, false},
		{"truncated zstd", compresstest.Zstd(t, sample())[:50], false},
		{"truncated gzip", compresstest.Gzip(t, sample())[:50], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in, 0)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, got, tt.unsupported)
			}
		})
	}
}

// TestUnfilterX86MatchesXZ compresses real x86-64 machine code (this test
// binary) with the xz tool's x86 filter, as the kernel build does, and checks
// that Decode restores it byte for byte, across check types and block splits.
// Presets are low to keep the test fast; the filter does not depend on them.
func TestUnfilterX86MatchesXZ(t *testing.T) {
	xzPath, err := exec.LookPath("xz")
	if err != nil {
		t.Skip("xz tool not installed (apt-get install xz-utils)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	code = code[:min(len(code), 1536<<10)]
	tests := []struct {
		name string
		args []string
	}{
		{"crc32 like the kernel", []string{"--check=crc32", "--x86", "--lzma2=preset=1,dict=32MiB"}},
		{"crc64", []string{"--check=crc64", "--x86", "--lzma2=preset=0"}},
		{"sha256", []string{"--check=sha256", "--x86", "--lzma2=preset=0"}},
		{"no check", []string{"--check=none", "--x86", "--lzma2=preset=0"}},
		{"x86 start offset", []string{"--x86=start=4096", "--lzma2=preset=0"}},
		{"several blocks", []string{"--block-size=512KiB", "--x86", "--lzma2=preset=0"}},
		{"lzma2 only like modules", []string{"--check=crc32", "--lzma2=preset=0,dict=1MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(xzPath, append([]string{"-c", "-T1"}, tt.args...)...)
			cmd.Stdin = bytes.NewReader(code)
			in, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz %v: %v", tt.args, err)
			}
			got, err := Decode(in, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if i := firstDiff(got, code); i >= 0 {
				t.Errorf("Decode output (%d bytes) differs from input (%d bytes) at offset %d", len(got), len(code), i)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
