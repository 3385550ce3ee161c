package treecopy

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "exe"), []byte("#!/bin/sh\n"), 0o751)
	os.WriteFile(filepath.Join(src, "top"), []byte{0, 1, 2, 0xff}, 0o600)
	os.Symlink("a/b/exe", filepath.Join(src, "link"))
	os.Mkdir(filepath.Join(src, "ro"), 0o500)

	var buf bytes.Buffer
	if err := Pack(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := Unpack(&buf, dst); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"a/b/exe", 0o751, "#!/bin/sh\n"},
		{"top", 0o600, "\x00\x01\x02\xff"},
		{"ro", os.ModeDir | 0o500, ""},
	}
	for _, c := range checks {
		info, err := os.Lstat(filepath.Join(dst, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if info.Mode() != c.mode {
			t.Errorf("%s: got mode %v, want %v", c.path, info.Mode(), c.mode)
		}
		if c.data != "" {
			b, _ := os.ReadFile(filepath.Join(dst, c.path))
			if string(b) != c.data {
				t.Errorf("%s: got %q, want %q", c.path, b, c.data)
			}
		}
	}
	if got, _ := os.Readlink(filepath.Join(dst, "link")); got != "a/b/exe" {
		t.Errorf("link: got target %q, want %q", got, "a/b/exe")
	}
}

func TestRoundTripFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("data"), 0o640)
	var buf bytes.Buffer
	if err := Pack(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "g")
	if err := Unpack(&buf, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "data" {
		t.Errorf("got %q, want %q", b, "data")
	}
}

// TestUnpackStaysInside feeds streams a hostile guest could send: each must be
// refused without writing outside the destination.
func TestUnpackStaysInside(t *testing.T) {
	type entry struct {
		name, link string
		typ        byte
	}
	tests := []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{".", "", tar.TypeDir}, {"./../escape", "", tar.TypeReg}}},
		{"absolute", []entry{{".", "", tar.TypeDir}, {"/tmp/escape", "", tar.TypeReg}}},
		{"through symlink", []entry{{".", "", tar.TypeDir}, {"./l", "..", tar.TypeSymlink}, {"./l/escape", "", tar.TypeReg}}},
		{"no dot first", []entry{{"./x", "", tar.TypeReg}}},
		{"second dot", []entry{{".", "", tar.TypeDir}, {".", "", tar.TypeDir}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range tt.entries {
				tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755})
			}
			tw.Close()
			parent := t.TempDir()
			err := Unpack(&buf, filepath.Join(parent, "dst"))
			if err == nil {
				t.Fatal("got nil error, want a refusal")
			}
			if _, serr := os.Stat(filepath.Join(parent, "escape")); serr == nil {
				t.Errorf("a file was written outside the destination")
			}
			if !strings.Contains(err.Error(), "unpack") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
}
