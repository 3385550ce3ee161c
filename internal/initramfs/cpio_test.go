package initramfs

import (
	"bytes"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// entry is one record of a newc archive, as readArchive parses it.
type entry struct {
	name         string
	ino, mode    uint32
	nlink        uint32
	data         []byte
	major, minor uint32 // rdevmajor, rdevminor
}

// readArchive parses a newc archive independently of Writer, checking the
// magic, the 4-byte alignment of every header and data block, and that
// nothing follows the trailer.
func readArchive(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	for off := 0; ; {
		if off%4 != 0 || len(b)-off < newcHeaderLen {
			t.Fatalf("header at offset %d: misaligned or truncated (archive is %d bytes)", off, len(b))
		}
		h := b[off : off+newcHeaderLen]
		if string(h[:6]) != "070701" {
			t.Fatalf("header at offset %d: got magic %q, want 070701", off, h[:6])
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header at offset %d, field %d: %v", off, i, err)
			}
			return uint32(v)
		}
		namesize, filesize := int(field(11)), int(field(6))
		name := b[off+newcHeaderLen : off+newcHeaderLen+namesize]
		if name[namesize-1] != 0 {
			t.Fatalf("header at offset %d: name %q is not NUL-terminated", off, name)
		}
		off = align4(off + newcHeaderLen + namesize)
		data := b[off : off+filesize]
		off = align4(off + filesize)
		e := entry{string(name[:namesize-1]), field(0), field(1), field(4), data, field(9), field(10)}
		if e.name == trailerName {
			if off != len(b) {
				t.Fatalf("got %d bytes after the trailer, want 0", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

// byName indexes entries by name.
func byName(entries []entry) map[string]entry {
	m := map[string]entry{}
	for _, e := range entries {
		m[e.name] = e
	}
	return m
}

func TestWriterRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		add      func(w *Writer) error
		wantMode uint32
		wantData string
		wantDev  [2]uint32
	}{
		{"dir", func(w *Writer) error { return w.Dir("dir", 0o755) }, 0o040755, "", [2]uint32{}},
		{"tmp", func(w *Writer) error { return w.Dir("/tmp", 0o777|fs.ModeSticky) }, 0o041777, "", [2]uint32{}},
		{"empty", func(w *Writer) error { return w.File("empty", 0o644, nil) }, 0o100644, "", [2]uint32{}},
		{"a", func(w *Writer) error { return w.File("a", 0o600, []byte("1")) }, 0o100600, "1", [2]uint32{}},
		{"bb", func(w *Writer) error { return w.File("bb", 0o755, []byte("12")) }, 0o100755, "12", [2]uint32{}},
		{"ccc", func(w *Writer) error { return w.File("ccc", 0o644, []byte("123")) }, 0o100644, "123", [2]uint32{}},
		{"dir/dddd", func(w *Writer) error { return w.File("dir/dddd", 0o644, []byte("12345")) }, 0o100644, "12345", [2]uint32{}},
		{"suid", func(w *Writer) error { return w.File("suid", 0o755|fs.ModeSetuid, []byte("x")) }, 0o104755, "x", [2]uint32{}},
		{"link", func(w *Writer) error { return w.Symlink("link", "dir/dddd") }, 0o120777, "dir/dddd", [2]uint32{}},
		{"console", func(w *Writer) error { return w.CharDev("console", 0o600, 5, 1) }, 0o020600, "", [2]uint32{5, 1}},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, tt := range tests {
		if err := tt.add(w); err != nil {
			t.Fatalf("add %s: %v", tt.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readArchive(t, buf.Bytes())
	if len(got) != len(tests) {
		t.Fatalf("got %d entries, want %d", len(got), len(tests))
	}
	inos := map[uint32]bool{}
	for i, tt := range tests {
		e := got[i]
		if e.name != tt.name || e.mode != tt.wantMode || string(e.data) != tt.wantData || [2]uint32{e.major, e.minor} != tt.wantDev {
			t.Errorf("entry %d: got {%q, mode %#o, %q, dev %d:%d}, want {%q, mode %#o, %q, dev %d:%d}",
				i, e.name, e.mode, e.data, e.major, e.minor, tt.name, tt.wantMode, tt.wantData, tt.wantDev[0], tt.wantDev[1])
		}
		if inos[e.ino] {
			t.Errorf("entry %s: inode %d reused", e.name, e.ino)
		}
		inos[e.ino] = true
	}
}

// TestWriterCpioTool checks that GNU cpio reads the archive too.
func TestWriterCpioTool(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Dir("modules", 0o755)
	w.File("modules/x.ko", 0o644, []byte("odd length"))
	w.Symlink("sbin", "bin")
	w.CharDev("console", 0o600, 5, 1)
	w.File("init", 0o755, []byte("#!"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-i", "-t", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	want := "modules\nmodules/x.ko\nsbin\nconsole\ninit\n"
	if string(out) != want {
		t.Errorf("cpio -t listed %q, want %q", out, want)
	}
}

func TestWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		add  func(w *Writer) error
		want string
	}{
		{"empty name", func(w *Writer) error { return w.File("/", 0o644, nil) }, "invalid name"},
		{"trailer name", func(w *Writer) error { return w.Dir(trailerName, 0o755) }, "invalid name"},
		{"after close", func(w *Writer) error { w.Close(); return w.Dir("x", 0o755) }, "already closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.add(NewWriter(&bytes.Buffer{}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWriterDeterministic(t *testing.T) {
	write := func() []byte {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Dir("d", 0o755)
		w.File("d/f", 0o644, []byte("data"))
		w.Close()
		return buf.Bytes()
	}
	if a, b := write(), write(); !bytes.Equal(a, b) {
		t.Errorf("got different archives from the same entries:\n%q\n%q", a, b)
	}
}
