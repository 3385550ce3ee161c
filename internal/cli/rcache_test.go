package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/resultcache"
	"github.com/vmlab/vmlab/internal/script"
)

func TestCopySource(t *testing.T) {
	tests := []struct {
		call string
		want string
		ok   bool
	}{
		{`copy_from_host("data/x.txt", "/srv/x")`, "data/x.txt", true},
		{`copy_from_host("/etc/hosts", target = "/etc/hosts")`, "/etc/hosts", true},
		{`copy_from_host(target = "/t", source = "a \"b\"")`, `a "b"`, true},
		{`copy_from_host(x, "/t")`, "", false},
		{`copy_from_host(`, "", false},
	}
	for _, tt := range tests {
		got, ok := copySource(tt.call)
		if got != tt.want || ok != tt.ok {
			t.Errorf("copySource(%s): got %q, %v; want %q, %v", tt.call, got, ok, tt.want, tt.ok)
		}
	}
}

// TestResultCacheFlags: bad values are refused before anything boots.
func TestResultCacheFlags(t *testing.T) {
	tests := []struct{ flag, want string }{
		{"-cache=maybe", `-cache "maybe": want on, read or off`},
		{"-count=2", "-count 2: only -count=1"},
		{"-cache-url=ftp://x", "want an http:// or https:// URL"},
		// The password is not shown.
		{"-cache-url=ftp://ci:s3cret@x", `-cache-url "ftp://ci:xxxxx@x": want an http:// or https:// URL`},
	}
	for _, tt := range tests {
		code, _, stderr := run("run", tt.flag, "testdata/pass.star")
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("run %s: got exit %d, %q; want exit %d and %q", tt.flag, code, stderr, exitUsage, tt.want)
		}
	}
}

// keyWorld is what a test's key is computed from, in files the test
// changes one at a time.
type keyWorld struct {
	dir, file, share, vmlab, kernel, dpkg string
}

func newKeyWorld(t *testing.T) keyWorld {
	dir := t.TempDir()
	w := keyWorld{dir: dir, file: filepath.Join(dir, "t.star"), share: filepath.Join(dir, "share"),
		vmlab: filepath.Join(dir, "vmlab"), kernel: filepath.Join(dir, "vmlinuz"), dpkg: filepath.Join(dir, "status")}
	os.Mkdir(w.share, 0o755)
	for p, content := range map[string]string{
		w.file:                          "vm = machine(vlans = [], shares = {\"share\": \"/mnt\"})\n\ndef test():\n    pass\n",
		filepath.Join(w.share, "a.txt"): "shared",
		w.vmlab:                         "vmlab 1",
		w.kernel:                        "kernel 1",
		w.dpkg:                          "Package: bash\nVersion: 5.2\n",
		filepath.Join(dir, "initrd"):    "initramfs",
		filepath.Join(dir, "qemu"):      "#!/bin/sh\necho QEMU emulator version 9.9.9\n",
	} {
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// key loads the world's file and returns its test's key.
func (w keyWorld) key(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(w.file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := script.Load(w.file, src)
	if err != nil {
		t.Fatalf("load %s: %v", w.file, err)
	}
	boot := &machine.Boot{Kernel: &kernel.Kernel{Image: w.kernel}, Initramfs: filepath.Join(w.dir, "initrd"), QEMU: filepath.Join(w.dir, "qemu"), FS: "9p"}
	k := keyer{h: &resultcache.Hasher{}, exe: w.vmlab, boot: boot, timeout: time.Minute, bf: bootFlags{memory: 512, cpus: 1}}
	key, err := k.key(context.Background(), job{file: f, test: "test"})
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return key
}

// TestKeyChangesWithInputs: the key of a test changes with each input
// vmlab run gathers: the file, a declaration, the host's packages, a
// shared file, vmlab itself, the kernel.
func TestKeyChangesWithInputs(t *testing.T) {
	w := newKeyWorld(t)
	old := dpkgStatus
	dpkgStatus = w.dpkg
	t.Cleanup(func() { dpkgStatus = old })
	base := w.key(t)
	if again := w.key(t); again != base {
		t.Fatalf("nothing changed: got keys %s and %s", base, again)
	}
	edit := func(p, from, to string) func() {
		return func() {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), from, to, 1)), 0o755)
		}
	}
	tests := []struct {
		name   string
		change func()
	}{
		{"a byte of the file", edit(w.file, "pass", "pass ")},
		{"a declaration", edit(w.file, "vlans = []", "vlans = [], memory = 600")},
		{"a host package's version", edit(w.dpkg, "5.2", "5.3")},
		{"a shared file", edit(filepath.Join(w.share, "a.txt"), "shared", "Shared")},
		{"vmlab", edit(w.vmlab, "1", "2")},
		{"the kernel", edit(w.kernel, "1", "2")},
	}
	prev := base
	for _, tt := range tests {
		tt.change()
		got := w.key(t)
		if got == prev {
			t.Errorf("changed %s: got the same key %s, want another", tt.name, got)
		}
		prev = got
	}
}

// TestCopiedFileRecorded: a passing test's copy_from_host source is
// recorded with its digest; the entry holds while the file is unchanged.
func TestCopiedFileRecorded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("one"), 0o644)
	c := &resultcache.Cache{Local: &resultcache.Local{Dir: t.TempDir()}, Hasher: &resultcache.Hasher{}}
	key := resultcache.Bytes([]byte("t"))
	rc := &resultCache{cache: c, tests: map[string]*cachedTest{"t.test": {key: key, base: dir}}}
	rc.Event(report.Event{Kind: report.Command, Test: "t.test", Command: `copy_from_host("data.txt", "/srv/data.txt")`})
	rc.Event(report.Event{Kind: report.TestEnd, Test: "t.test", Passed: true, Duration: time.Second, Time: time.Now()})
	rc.Close()
	e, ok := c.Lookup(context.Background(), key, dir)
	if !ok {
		t.Fatal("Lookup after the test passed: got a miss")
	}
	if len(e.Reads) != 1 || e.Reads[0].Path != "data.txt" {
		t.Errorf("the entry's reads: got %+v, want data.txt", e.Reads)
	}
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("two"), 0o644)
	if _, ok := c.Lookup(context.Background(), key, dir); ok {
		t.Error("Lookup after the copied file changed: got a hit, want a miss")
	}
}

// TestFailedNotStored: a failed test leaves no entry.
func TestFailedNotStored(t *testing.T) {
	c := &resultcache.Cache{Local: &resultcache.Local{Dir: t.TempDir()}}
	key := resultcache.Bytes([]byte("t"))
	rc := &resultCache{cache: c, tests: map[string]*cachedTest{"t.test": {key: key}}}
	rc.Event(report.Event{Kind: report.TestEnd, Test: "t.test", Passed: false, Error: "boom"})
	rc.Close()
	if _, ok := c.Lookup(context.Background(), key, ""); ok {
		t.Error("Lookup after the test failed: got a hit, want a miss")
	}
}

// TestKeyErrorSaidOnce: when a test cannot be keyed (here QEMU is not
// there to ask its version), its tests run, and the run says so once.
func TestKeyErrorSaidOnce(t *testing.T) {
	t.Setenv(resultCacheEnv, t.TempDir())
	w := newKeyWorld(t)
	os.WriteFile(w.file, []byte("vm = machine(vlans = [])\n\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n"), 0o644)
	src, _ := os.ReadFile(w.file)
	f, err := script.Load(w.file, src)
	if err != nil {
		t.Fatal(err)
	}
	jobs := []job{{file: f, test: "test_a"}, {file: f, test: "test_b"}}
	boot := &machine.Boot{Kernel: &kernel.Kernel{Image: w.kernel}, Initramfs: filepath.Join(w.dir, "initrd"), QEMU: filepath.Join(w.dir, "no-qemu")}
	var stderr strings.Builder
	e := &env{stdout: &stderr, stderr: &stderr}
	rc := &resultCache{mode: "on"}
	rep := report.New()
	left := rc.start(context.Background(), e, jobs, boot, time.Minute, bootFlags{memory: 512, cpus: 1}, false, rep)
	rep.Close()
	if len(left) != 2 {
		t.Errorf("jobs left to run: got %d, want both", len(left))
	}
	if n := strings.Count(stderr.String(), "result cache:"); n != 1 || !strings.Contains(stderr.String(), "no-qemu") {
		t.Errorf("stderr: got %q, want one line naming the missing QEMU", stderr.String())
	}
}

// TestSameIDNotRecorded: a/x.star and b/x.star both have test_a (selectJobs
// refuses them; this is the cache's own line of defence). The events name
// only the id, so neither test's pass is stored. Before, b's key was
// recorded under the id, and a's pass was stored as b's: b, failing, was
// later reported cached.
func TestSameIDNotRecorded(t *testing.T) {
	store := t.TempDir()
	t.Setenv(resultCacheEnv, store)
	w := newKeyWorld(t)
	var jobs []job
	for _, d := range []string{"a", "b"} {
		p := filepath.Join(w.dir, d, "x.star")
		src := []byte("def test_a():\n    pass\n")
		os.Mkdir(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, src, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := script.Load(p, src)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{file: f, test: "test_a"})
	}
	boot := &machine.Boot{Kernel: &kernel.Kernel{Image: w.kernel}, Initramfs: filepath.Join(w.dir, "initrd"), QEMU: filepath.Join(w.dir, "qemu")}
	var stderr strings.Builder
	e := &env{stdout: &stderr, stderr: &stderr}
	rc := &resultCache{mode: "on"}
	rep := report.New()
	left := rc.start(context.Background(), e, jobs, boot, time.Minute, bootFlags{memory: 512, cpus: 1}, false, rep)
	if len(left) != 2 {
		t.Fatalf("jobs left to run: got %d, want both (%s)", len(left), stderr.String())
	}
	rc.Event(report.Event{Kind: report.TestEnd, Test: "x.test_a", Passed: true, Duration: time.Second, Time: time.Now()})
	rc.Close()
	rep.Close()
	stored, _ := filepath.Glob(filepath.Join(store, "*"))
	if len(stored) != 0 {
		t.Errorf("stored after x.test_a passed: got %v, want nothing (the id names two tests)", stored)
	}
}

// TestKeyFromLoadedBytes: the key is of the bytes loaded and run, not of
// what the file on disk holds when it is keyed. Before, the file was read
// again.
func TestKeyFromLoadedBytes(t *testing.T) {
	w := newKeyWorld(t)
	old := dpkgStatus
	dpkgStatus = w.dpkg
	t.Cleanup(func() { dpkgStatus = old })
	src, _ := os.ReadFile(w.file)
	f, err := script.Load(w.file, src)
	if err != nil {
		t.Fatal(err)
	}
	want := w.key(t)
	os.WriteFile(w.file, append(src, "# edited after loading\n"...), 0o644)
	boot := &machine.Boot{Kernel: &kernel.Kernel{Image: w.kernel}, Initramfs: filepath.Join(w.dir, "initrd"), QEMU: filepath.Join(w.dir, "qemu"), FS: "9p"}
	k := keyer{h: &resultcache.Hasher{}, exe: w.vmlab, boot: boot, timeout: time.Minute, bf: bootFlags{memory: 512, cpus: 1}}
	got, err := k.key(context.Background(), job{file: f, test: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("the file changed on disk after loading: got key %.12s, want the loaded bytes' %.12s", got, want)
	}
}

// TestCopiedFileOutsideNotRecorded: a copy_from_host source outside the
// test file's directory leaves the test unrecorded (a lookup hashes only
// reads inside it); an absolute source inside it is recorded relative.
func TestCopiedFileOutsideNotRecorded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.txt"), []byte("one"), 0o644)
	outside := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(outside, []byte("127.0.0.1 localhost"), 0o644)
	c := &resultcache.Cache{Local: &resultcache.Local{Dir: t.TempDir()}, Hasher: &resultcache.Hasher{}}
	for _, tt := range []struct {
		src   string
		reads []resultcache.Read // nil: unrecorded
	}{
		{filepath.Join(dir, "data.txt"), []resultcache.Read{{Path: "data.txt", SHA256: resultcache.Bytes([]byte("one"))}}},
		{outside, nil},
		{"../" + filepath.Base(filepath.Dir(outside)) + "/hosts", nil},
		{"/dev/zero", nil},
	} {
		ct := &cachedTest{key: "k", base: dir}
		rc := &resultCache{cache: c}
		rc.recordRead(ct, `copy_from_host("`+tt.src+`", "/srv/x")`)
		if tt.reads == nil && !ct.unkeyed {
			t.Errorf("copy_from_host(%q): got reads %+v, want the test unrecorded", tt.src, ct.reads)
		}
		if tt.reads != nil && (ct.unkeyed || len(ct.reads) != 1 || ct.reads[0] != tt.reads[0]) {
			t.Errorf("copy_from_host(%q): got reads %+v (unkeyed %v), want %+v", tt.src, ct.reads, ct.unkeyed, tt.reads)
		}
	}
}
