package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/report"
)

// TestReportMergeKeepsHostFilesOut: a crafted shard directory names host
// files in its events ("ID/../../x", an absolute path elsewhere) and holds
// a symbolic link to one and a named pipe. The merged report reads none of
// them: the paths are dropped (with a note), the link and the pipe are not
// copied, report.html inlines nothing of the host's. Before, the link was
// copied as it was and every one of the host's PNGs was inlined.
func TestReportMergeKeepsHostFilesOut(t *testing.T) {
	parent := t.TempDir()
	host := t.TempDir()
	secret := filepath.Join(host, "secret.png")
	if err := os.WriteFile(secret, []byte("host secret!"), 0o600); err != nil {
		t.Fatal(err)
	}
	s1 := newFixture(1, 1, "a.test_one", "a.test_two", "b.test_three", "b.test_four")
	id := "a.test_one"
	at := s1.events[1].Time
	climb := "/builds/runner/out/" + id + "/../../../.." + secret
	s1.events = append(s1.events[:2:2],
		report.Event{Time: at, Kind: report.Command, Test: id, Machine: "vm", Command: `screenshot("a")`, File: climb},
		report.Event{Time: at, Kind: report.Command, Test: id, Machine: "vm", Command: `screenshot("b")`, File: secret},
		report.Event{Time: at, Kind: report.Command, Test: id, Machine: "vm", Command: `screenshot("c")`, File: "/builds/runner/out/" + id + "/shot.png"},
		report.Event{Time: at, Kind: report.Command, Test: id, Machine: "vm", Command: `screenshot("d")`, File: "/builds/runner/out/" + id + "/fifo.png"},
	)
	s1.events = append(s1.events, newFixture(1, 1, id).events[2:]...)
	for _, other := range []string{"a.test_two", "b.test_three", "b.test_four"} {
		s1.events = append(s1.events, newFixture(1, 1, other).events...)
	}
	dir := s1.write(t, parent)
	if err := os.Symlink(secret, filepath.Join(dir, id, "shot.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, id, "fifo.png"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "merged")
	done := make(chan struct{})
	var code int
	var stdout, stderr string
	go func() {
		code, stdout, stderr = run("report", "merge", "-out", out, dir)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // the pipe, opened, would block for ever
		t.Fatal("merge still running after a minute (blocked on the named pipe?)")
	}
	if code != exitOK {
		t.Fatalf("got exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, name := range []string{"shot.png", "fifo.png"} {
		if _, err := os.Lstat(filepath.Join(out, id, name)); err == nil {
			t.Errorf("merged %s/%s exists: want the link and the pipe skipped", id, name)
		}
	}
	if _, err := os.Stat(filepath.Join(out, id, "vm", "console.log")); err != nil {
		t.Errorf("the test's own file was not copied: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(out, "events.jsonl"))
	evs, _, err := report.ReadEvents(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	var notes int
	for _, e := range evs {
		if strings.Contains(e.File, host) {
			t.Errorf("merged event names the host file: %+v", e)
		}
		if strings.Contains(e.Text, "merge: dropped") {
			notes++
		}
	}
	if notes != 2 {
		t.Errorf("merged events: got %d notes of dropped paths, want 2", notes)
	}
	page, _ := os.ReadFile(filepath.Join(out, "report.html"))
	if strings.Contains(string(page), base64.StdEncoding.EncodeToString([]byte("host secret!"))) {
		t.Error("report.html inlines the host's file")
	}
}

// TestMovedPath: a path of a test's events moves under out/ID, cleaned; a
// path that leaves it is dropped.
func TestMovedPath(t *testing.T) {
	for _, tt := range []struct {
		path, want string
		ok         bool
	}{
		{"", "", true},
		{"/b/out/x.test_a/vm/console.log", "/m/x.test_a/vm/console.log", true},
		{"out/x.test_a/shot.png", "/m/x.test_a/shot.png", true},
		{"/b/out/x.test_a/sub/../shot.png", "/m/x.test_a/shot.png", true},
		{"/b/out/x.test_a/../../../../tmp/secret.png", "", false},
		{"/b/out/x.test_a/..", "", false},
		{"/etc/shadow", "", false},
	} {
		got, ok := movedPath(tt.path, "x.test_a", "/m")
		if got != tt.want || ok != tt.ok {
			t.Errorf("movedPath(%q): got %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

// TestReportMergeFilesInAnotherOrder: runners given the files in another
// order list the same tests in another order; the split is the same, and
// the merge takes them, in the lowest-index shard's order whatever order
// the directories come in. Before, it refused them as different selections.
func TestReportMergeFilesInAnotherOrder(t *testing.T) {
	parent := t.TempDir()
	s1 := newFixture(1, 2, "a.test_one", "b.test_three")
	s2 := newFixture(2, 2, "a.test_two", "b.test_four")
	s2.m.All = []string{"b.test_three", "b.test_four", "a.test_one", "a.test_two"}
	dir1, dir2 := s1.write(t, parent), s2.write(t, parent)
	out := filepath.Join(parent, "merged")
	code, stdout, stderr := run("report", "merge", "-out", out, dir2, dir1)
	if code != exitOK {
		t.Fatalf("got exit %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if order, _ := readMergedJUnit(t, out); strings.Join(order, " ") != strings.Join(fixtureAll, " ") {
		t.Errorf("junit.xml has testcases %v, want shard 1's order %v", order, fixtureAll)
	}
	// Another set of tests is still refused.
	s2.m.All = append(s2.m.All[:3:3], "c.test_five")
	s2.write(t, parent)
	if code, _, stderr := run("report", "merge", "-out", filepath.Join(parent, "m2"), dir1, dir2); code != exitUsage || !strings.Contains(stderr, "different selections") {
		t.Errorf("shards with different tests: got exit %d, %q; want 2, different selections", code, stderr)
	}
}

// TestReportMergeLeavesScratchOut: a shard killed during a test leaves the
// machine's scratch in its directory (a 4 GiB sparse root.img, a disk
// image, hostview/). The merge copies what the reports show (console log,
// long outputs, captures, screenshots, copied files, even one named .img),
// none of the scratch, sparse files sparse, and a file over the cap cut
// with a note. Before, root.img was copied whole (4 GiB on disk) and
// hostview/ with it.
func TestReportMergeLeavesScratchOut(t *testing.T) {
	parent := t.TempDir()
	id := "a.test_one"
	s1 := newFixture(1, 1, "a.test_one", "a.test_two", "b.test_three", "b.test_four")
	s1.m.Complete = false
	s1.events = s1.events[:1] // killed right after a.test_one began
	s1.files = map[string]string{
		id + "/vm/console.log":             "booting\n",
		id + "/vm/output/command-1.stdout": "a long output\n",
		id + "/vlan1.pcap":                 "pcap",
		id + "/shot.png":                   "png",
		id + "/files/backup.img":           "copied from the guest",
		id + "/vm/hostview/etc/shadow":     "root:x:",
		id + "/vm/disk1.img":               "disk",
		id + "/vm/screendump-1.png":        "temp",
		id + "/vm/big.log":                 strings.Repeat("x", 3<<20),
	}
	s1.events = append(s1.events, report.Event{Time: s1.events[0].Time, Kind: report.Command, Test: id, Machine: "vm",
		Command: "cat big", StdoutFile: "/builds/runner/out/" + id + "/vm/big.log"})
	dir := s1.write(t, parent)
	root := filepath.Join(dir, id, "vm", "root.img")
	f, err := os.Create(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("superblock"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func(c int64) { mergeFileCap = c }(mergeFileCap)
	mergeFileCap = 1 << 20

	out := filepath.Join(parent, "merged")
	code, stdout, stderr := run("report", "merge", "-out", out, dir)
	if code != exitFail {
		t.Fatalf("got exit %d, want 1 (a shard that did not finish)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, p := range []string{"vm/console.log", "vm/output/command-1.stdout", "vlan1.pcap", "shot.png", "files/backup.img", "vm/big.log"} {
		if _, err := os.Stat(filepath.Join(out, id, p)); err != nil {
			t.Errorf("%s was not copied: %v", p, err)
		}
	}
	for _, p := range []string{"vm/root.img", "vm/disk1.img", "vm/hostview", "vm/screendump-1.png"} {
		if _, err := os.Lstat(filepath.Join(out, id, p)); err == nil {
			t.Errorf("%s was copied: want the machine's scratch left out", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, id, "vm", "big.log")); err != nil || fi.Size() != 1<<20 {
		t.Errorf("big.log: got %v, %v; want it cut at 1 MiB", fi, err)
	}
	if !strings.Contains(stderr, "big.log: copied its first 1 MiB only (2 MiB left out)") {
		t.Errorf("stderr does not note the cut file:\n%s", stderr)
	}
}

// TestCopyPrivateSparse: a sparse file is copied with its holes (and its
// blocks of zeros) left holes, its content the same.
func TestCopyPrivateSparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt(make([]byte, 1<<20), 1<<20) // a megabyte of written zeros
	f.WriteAt([]byte("middle"), 64<<20)
	f.Truncate(256 << 20)
	f.Close()
	cut, err := copyPrivate(src, dst, 1<<30)
	if err != nil || cut != 0 {
		t.Fatalf("copyPrivate: cut %d, %v", cut, err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if string(a) != string(b) {
		t.Fatal("the copy's content differs")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dst, &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("the copy of a 256 MiB file with 10 bytes of data uses %d bytes: want its holes kept", used)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}
