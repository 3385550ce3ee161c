package resultcache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/spec"
)

func baseInputs() Inputs {
	return Inputs{
		File: "examples/minimal.star", Source: []byte("def test(): pass\n"), Test: "test",
		Machines: []spec.Machine{spec.New("vm")},
		Vmlab:    "v1", Kernel: "k1", Initramfs: "i1", QEMU: "q1",
		Images:       map[string]string{"vm": "img1"},
		HostPackages: "dpkg1",
		Shares:       map[string]string{"/srv/share": "tree1"},
		Options:      map[string]string{"timeout": "6m0s", "memory": "512", "accel": "tcg"},
	}
}

// TestKeyCoversEveryInput: changing any one input changes the key, and
// the same inputs give the same key.
func TestKeyCoversEveryInput(t *testing.T) {
	base := baseInputs().Key()
	if again := baseInputs().Key(); again != base {
		t.Fatalf("the same inputs: got keys %s and %s, want one", base, again)
	}
	tests := []struct {
		name   string
		change func(*Inputs)
	}{
		{"a byte of the file", func(in *Inputs) { in.Source = []byte("def test(): pass \n") }},
		{"the file's base name", func(in *Inputs) { in.File = "examples/other.star" }},
		{"the test", func(in *Inputs) { in.Test = "test_other" }},
		{"a declaration", func(in *Inputs) { in.Machines[0].MemoryMiB++ }},
		{"a declared package", func(in *Inputs) { in.Machines[0].Packages = []string{"curl"} }},
		{"vmlab", func(in *Inputs) { in.Vmlab = "v2" }},
		{"the kernel", func(in *Inputs) { in.Kernel = "k2" }},
		{"the initramfs", func(in *Inputs) { in.Initramfs = "i2" }},
		{"QEMU", func(in *Inputs) { in.QEMU = "q2" }},
		{"an image", func(in *Inputs) { in.Images["vm"] = "img2" }},
		{"the host's packages", func(in *Inputs) { in.HostPackages = "dpkg2" }},
		{"a shared tree", func(in *Inputs) { in.Shares["/srv/share"] = "tree2" }},
		{"the timeout", func(in *Inputs) { in.Options["timeout"] = "1m0s" }},
		{"the accelerator", func(in *Inputs) { in.Options["accel"] = "kvm" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInputs()
			tt.change(&in)
			if got := in.Key(); got == base {
				t.Errorf("changed %s: got the same key %s, want another", tt.name, got)
			}
		})
	}
}

// TestKeyWhateverTheFileIsCalled: the key is the same however the file was
// named on the command line (`vmlab run suite/a.star`, or `cd suite &&
// vmlab run a.star`, or an absolute path). Before, the name as given was
// keyed, and the second missed the entry of the first.
func TestKeyWhateverTheFileIsCalled(t *testing.T) {
	in := baseInputs()
	want := in.Key()
	for _, name := range []string{"minimal.star", "./minimal.star", "/src/vmlab/examples/minimal.star", "examples//minimal.star", "../examples/minimal.star"} {
		in.File = name
		if got := in.Key(); got != want {
			t.Errorf("file named %q: got key %.12s, want %.12s (examples/minimal.star's)", name, got, want)
		}
	}
}

// TestTree: a tree's digest changes with a file's content, its mode, a
// new file and a link's target, and not with its files' times.
func TestTree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "one")
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	write("sub/b", "two")
	os.Symlink("a", filepath.Join(dir, "link"))
	sum := func() string {
		t.Helper()
		s, err := (&Hasher{}).Tree(dir)
		if err != nil {
			t.Fatalf("Tree: %v", err)
		}
		return s
	}
	prev := sum()
	steps := []struct {
		name   string
		change func()
		same   bool
	}{
		{"a file's times", func() { os.Chtimes(filepath.Join(dir, "a"), timeZero, timeZero) }, true},
		{"a file's content", func() { write("sub/b", "TWO") }, false},
		{"a file's mode", func() { os.Chmod(filepath.Join(dir, "a"), 0o755) }, false},
		{"a new file", func() { write("c", "") }, false},
		{"a link's target", func() {
			os.Remove(filepath.Join(dir, "link"))
			os.Symlink("c", filepath.Join(dir, "link"))
		}, false},
	}
	for _, s := range steps {
		s.change()
		got := sum()
		if (got == prev) != s.same {
			t.Errorf("%s: digest %s -> %s, want same=%v", s.name, prev, got, s.same)
		}
		prev = got
	}
}

// TestHasherNoticesReplacedFile: a file rewritten with another content is
// hashed again, though the Hasher remembers digests.
func TestHasherNoticesReplacedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("one"), 0o644)
	var h Hasher
	a, err := h.File(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".new", []byte("two"), 0o644)
	os.Rename(p+".new", p)
	b, err := h.File(p)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("a replaced file: got the same digest %s, want another", a)
	}
}
