package coverage

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// longGoName is the file name the long-named fixture's meta-data holds,
// long enough to be overwritten in place by any name the tests plant;
// longGoName2 its second file.
var (
	longGoName  = "example.com/" + strings.Repeat("a", 150) + "/c.go"
	longGoName2 = strings.TrimSuffix(longGoName, "c.go") + "d.go"
)

// runPatchedGo builds a program of two files, longGoName and
// longGoName2, runs it as machine in test t1, and overwrites the files'
// names in the meta-data with planted (one or two names, each as long
// as longGoName: padGo): a guest's root can write anything in its share.
func runPatchedGo(t *testing.T, dir, machine string, planted ...string) {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"go.mod": "module " + filepath.Dir(longGoName) + "\n\ngo 1.22\n",
		"c.go":   "package main\n\nfunc main() { println(f()) }\n",
		"d.go":   "package main\n\nfunc f() int { return 1 }\n",
	})
	bin := filepath.Join(src, "prog")
	run(t, src, []string{"GOFLAGS=", "GOWORK=off"}, "go", "build", "-cover", "-o", bin, ".")
	runGo(t, dir, "t1", machine, bin, "")
	writeState(t, dir, State{Test: "t1", Machine: machine})
	for _, p := range planted {
		if len(p) != len(longGoName) {
			t.Fatalf("planted name %q is not %d bytes long", p, len(longGoName))
		}
	}
	metas, _ := filepath.Glob(filepath.Join(GuestData(MachineDir(dir, "t1", machine), GoDir), "covmeta.*"))
	if len(metas) != 1 {
		t.Fatalf("meta-data files %q, want one", metas)
	}
	data, err := os.ReadFile(metas[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range planted {
		old := []string{longGoName, longGoName2}[i]
		if !bytes.Contains(data, []byte(old)) {
			t.Fatalf("%s does not hold %s", metas[0], old)
		}
		data = bytes.ReplaceAll(data, []byte(old), []byte(p))
	}
	if err := os.WriteFile(metas[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// padGo is prefix, x's and ".go", as long as longGoName.
func padGo(t *testing.T, prefix string) string {
	n := len(longGoName) - len(prefix) - len(".go")
	if n < 0 {
		t.Fatalf("%q is too long to plant", prefix)
	}
	return prefix + strings.Repeat("x", n) + ".go"
}

// File names that go list would take for flags ran a command on the
// host (-export makes go list compile, and -toolexec runs the compiler
// through the guest's command): every name from the guest is checked
// first, and the machine's data is refused with a message naming it.
func TestMergeGoNameIsAFlag(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	pwned := filepath.Join(t.TempDir(), "pwned")
	runPatchedGo(t, dir, "server", padGo(t, "-export/"), padGo(t, "-toolexec=/bin/sh -c touch${IFS}"+pwned+"${IFS}#/"))
	_, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf)
	if _, serr := os.Stat(pwned); serr == nil {
		t.Fatalf("the merge ran the guest's command: %s exists", pwned)
	}
	if err == nil || !strings.Contains(err.Error(), "of server in test t1") || !strings.Contains(err.Error(), "starts with -") || !strings.Contains(err.Error(), "not merged") {
		t.Fatalf("got error %v, want one naming server, the name and that it is not merged", err)
	}
}

// checkGoName accepts the names the toolchain writes and refuses what
// a tool could misread or what leaves the package.
func TestCheckGoName(t *testing.T) {
	for name, ok := range map[string]bool{
		"example.com/demo/lib/lib.go":         true,
		"demo/main.go":                        true,
		"/home/u/src/main.go":                 true,
		"-toolexec=x/a.go":                    false,
		"example.com/-x/a.go":                 false,
		"example.com/../../etc/a.go":          false,
		"example.com/./a.go":                  false,
		"example.com//a.go":                   false,
		"example.com/a b/a.go":                false,
		"example.com/a\n/a.go":                false,
		"/tmp/x/key.pem":                      false,
		"/tmp/../etc/a.go":                    false,
		"main.go":                             false,
		"":                                    false,
		"example.com/demo/lib/lib.go\x00x.go": false,
	} {
		if err := checkGoName(name); (err == nil) != ok {
			t.Errorf("checkGoName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

// A guest naming a host file as its source got the file's text into the
// report: an absolute name is read only under the current module, and go
// tool cover is given only the files read.
func TestMergeGoSourceOutsideModule(t *testing.T) {
	skipShort(t)
	mod := t.TempDir()
	writeFiles(t, mod, map[string]string{"go.mod": "module example.com/here\n"})
	t.Chdir(mod)
	secret := padGo(t, filepath.Join(t.TempDir(), "s"))
	if err := os.WriteFile(secret, []byte("package hostsecret // HOSTSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A link inside the module to the host file: not followed either.
	inMod := filepath.Join(mod, "l")
	if err := os.Mkdir(inMod, 0o755); err != nil {
		t.Fatal(err)
	}
	planted := padGo(t, inMod+"/s")
	if err := os.Symlink(secret, planted); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{secret, planted} {
		t.Run(filepath.Base(filepath.Dir(name)), func(t *testing.T) {
			t.Chdir(mod)
			dir := t.TempDir()
			runPatchedGo(t, dir, "server", name)
			if _, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf); err != nil {
				t.Fatal(err)
			}
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("HOSTSECRET")) {
						t.Errorf("%s holds the host file's text", p)
					}
				}
				return nil
			})
		})
	}
}

// CheckShare: a share within the cap and of files and directories only
// is fine; a link, a pipe, or more bytes than the cap are named.
func TestCheckShare(t *testing.T) {
	for _, tt := range []struct {
		name  string
		plant func(share string) error
		limit int64
		want  string
	}{
		{"fine", func(string) error { return nil }, 100, ""},
		{"link", func(s string) error { return os.Symlink("/etc/passwd", filepath.Join(s, GoDir, "covmeta.0")) }, 100, "the share held go/covmeta.0, which is not a regular file or directory"},
		{"pipe", func(s string) error { return unix.Mkfifo(filepath.Join(s, GcovDir, "x.gcda"), 0o600) }, 100, "the share held gcov/x.gcda, which is not a regular file or directory"},
		{"over the cap", func(s string) error { return os.WriteFile(filepath.Join(s, GoDir, "big"), make([]byte, 60), 0o600) }, 100, "the share holds more than 100 bytes"},
		{"a file too large", func(s string) error { return os.Truncate(filepath.Join(s, GoDir, "covcounters.0"), maxGuestFile+1) }, 1 << 40, "the share holds go/covcounters.0 of 67108865 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			md := t.TempDir()
			writeFiles(t, filepath.Join(md, GuestDir), map[string]string{
				"go/covcounters.0":  strings.Repeat("c", 50),
				"gcov/build/x.gcda": "",
			})
			if err := tt.plant(filepath.Join(md, GuestDir)); err != nil {
				t.Fatal(err)
			}
			why, err := CheckShare(md, tt.limit)
			if err != nil || !strings.HasPrefix(why, tt.want) || (tt.want == "") != (why == "") {
				t.Errorf("got %q, %v; want %q", why, err, tt.want)
			}
			// What is not a file or directory does not stay for an
			// archive of DIR to follow.
			filepath.WalkDir(md, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !d.Type().IsRegular() {
					t.Errorf("%s (%v) is still in the share", p, d.Type())
				}
				return nil
			})
		})
	}
	if why, err := CheckShare(t.TempDir(), 1); why != "" || err != nil {
		t.Errorf("a machine without a share: got %q, %v", why, err)
	}
}

// A machine whose share holds what is not coverage data is named, not
// merged: as its state says (the run checked it at the test's end), or as
// the merge finds it (a run cut short wrote no state).
// TestCheckShareSetID: a set-id file the guest's root left loses its
// set-id bits.
func TestCheckShareSetID(t *testing.T) {
	md := t.TempDir()
	writeFiles(t, filepath.Join(md, GuestDir), map[string]string{"go/prog": "x"})
	p := filepath.Join(md, GuestDir, "go", "prog")
	if err := os.Chmod(p, 0o755|fs.ModeSetuid|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckShare(md, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		t.Errorf("mode %v, want the set-id bits cleared", fi.Mode())
	}
}

func TestMergeExcluded(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	bin := buildGo(t, src, "")
	runGo(t, dir, "t1", "server", bin, "server")
	writeState(t, dir, State{Test: "t1", Machine: "server"})
	runGo(t, dir, "t1", "client", bin, "client")
	writeState(t, dir, State{Test: "t1", Machine: "client", Partial: true, Excluded: "the share holds more than 1073741824 bytes"})
	runGo(t, dir, "t1", "cut", bin, "client")
	if err := os.Symlink("/etc/passwd", filepath.Join(GuestData(MachineDir(dir, "t1", "cut"), GoDir), "covmeta.0123")); err != nil {
		t.Fatal(err)
	}
	sum, err := Merge(context.Background(), dir, []string{"t1"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Machines) != 1 || sum.Machines[0].Name != "server" {
		t.Errorf("merged machines %+v, want server only", sum.Machines)
	}
	for _, want := range []string{
		"coverage data of client in test t1 not merged: the share holds more than 1073741824 bytes",
		"coverage data of cut in test t1 not merged: the share held go/covmeta.0123, which is not a regular file or directory (L---------; removed)",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary:\n%s\nwant the line %q", sum, want)
		}
	}
}

// A directory of the share the host's user cannot read (the guest's root
// made it 000) excludes the data instead of failing the run's end.
// Root reads any directory, so this runs only as another user.
func TestCheckShareUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a directory of mode 000")
	}
	md := t.TempDir()
	writeFiles(t, filepath.Join(md, GuestDir), map[string]string{"go/locked/covmeta.0": "m"})
	locked := filepath.Join(md, GuestDir, GoDir, "locked")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(locked, 0o755)
	why, err := CheckShare(md, MaxShareBytes)
	if err != nil || !strings.HasPrefix(why, "the share's go/locked cannot be read") {
		t.Errorf("got %q, %v; want the data excluded for go/locked", why, err)
	}
}
