package cachefile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holderEnv makes the test binary a process that uses one cache entry and
// holds it until its stdin closes or it is killed.
const holderEnv = "VMLAB_TEST_CACHE_HOLDER"

func init() {
	if path := os.Getenv(holderEnv); path != "" {
		if err := UseBytes(path, []byte("from the holder")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("held")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
}

func startHolder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("holder: got %q, %v", line, err)
	}
	return cmd
}

// entry writes a cache file of size bytes last used age ago.
func entry(t *testing.T, dir, name string, size int, age time.Duration) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

func names(dir string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func TestUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmlinux-x")
	writes := 0
	write := func(w io.Writer) error {
		writes++
		_, err := io.WriteString(w, "kernel")
		return err
	}
	for range 2 {
		if err := Use(path, write); err != nil {
			t.Fatal(err)
		}
	}
	if writes != 1 {
		t.Errorf("wrote %d times, want once", writes)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	if err := Use(path, write); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("last use %v, want now", fi.ModTime())
	}
	// Removed behind this process's back (by hand): written again.
	os.Remove(path)
	if err := Use(path, write); err != nil || writes != 2 {
		t.Errorf("got %v after %d writes, want a second write", err, writes)
	}
	if b, _ := os.ReadFile(path); string(b) != "kernel" {
		t.Errorf("got %q", b)
	}
	if _, err := Clean(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("clean removed an entry this process uses: %v", err)
	}
}

func TestTrim(t *testing.T) {
	const mb = 1 << 20
	limits := Limits{MaxBytes: 10 * mb, MaxAge: 30 * 24 * time.Hour, Grace: 10 * time.Minute}
	tests := []struct {
		name    string
		entries map[string][2]int64 // name → size, age in hours
		limits  Limits
		removed []string
	}{
		{"under the bounds", map[string][2]int64{"a": {4 * mb, 48}, "b": {4 * mb, 1}}, limits, nil},
		{"too old", map[string][2]int64{"old": {1, 31 * 24}, "new": {1, 1}}, limits, []string{"old"}},
		{"over size, least recently used first", map[string][2]int64{
			"a": {4 * mb, 3}, "b": {4 * mb, 2}, "c": {4 * mb, 1}, "d": {4 * mb, 0},
		}, limits, []string{"a", "b"}},
		{"just used stays over size", map[string][2]int64{"a": {8 * mb, 0}, "b": {8 * mb, 0}}, limits, nil},
		{"a dead writer's file", map[string][2]int64{".initramfs-x.cpio.tmp-123": {mb, 1}, "b": {mb, 1}}, limits, []string{".initramfs-x.cpio.tmp-123"}},
		{"clean", map[string][2]int64{"a": {1, 0}, "b": {1, 5}}, Limits{}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, sa := range tt.entries {
				entry(t, dir, name, int(sa[0]), time.Duration(sa[1])*time.Hour)
			}
			removed, err := Trim(dir, tt.limits)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range removed {
				got = append(got, e.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.removed) {
				t.Errorf("removed %v, want %v", got, tt.removed)
			}
			for _, n := range got {
				if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
					t.Errorf("%s still there", n)
				}
			}
		})
	}
}

// TestInUseAcrossProcesses: an entry another process uses survives a
// clean; once that process is killed, the next clean removes it.
func TestInUseAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "initramfs-held.cpio")
	holder := startHolder(t, path)
	entry(t, dir, "initramfs-unused.cpio", 100, 0)

	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var inUse []string
	for _, e := range list {
		if e.InUse {
			inUse = append(inUse, e.Name)
		}
	}
	if !slices.Equal(inUse, []string{"initramfs-held.cpio"}) {
		t.Errorf("in use: got %v, want the holder's entry", inUse)
	}
	if _, err := Clean(dir); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(dir), " "); got != "initramfs-held.cpio" {
		t.Errorf("after clean: got %q, want only the held entry", got)
	}
	holder.Process.Kill()
	holder.Wait()
	if _, err := Clean(dir); err != nil {
		t.Fatal(err)
	}
	if got := names(dir); len(got) != 0 {
		t.Errorf("after the holder died: got %v, want an empty cache", got)
	}
}

// TestWriteNoRoom: an entry that does not fit says which cache is full and
// what to do (a full cache's kernel failed a run with the bare ENOSPC),
// and leaves no temporary file.
func TestWriteNoRoom(t *testing.T) {
	dir := t.TempDir()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	err = Write(filepath.Join(dir, "entry"), func(w io.Writer) error {
		_, err := io.Copy(full, strings.NewReader("data"))
		return err
	})
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "the cache "+dir+" has no room left") {
		t.Errorf("got %v, want ENOSPC naming the cache and what to do", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("left %v behind", names)
	}
}

// TestEntryNotAFile: an entry, or a directory entry's lock file, that is a
// FIFO or a link is refused at once. Before, a FIFO in place of a
// snapshot's memory file blocked UseDir's open, and so the run, for ever.
func TestEntryNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo, link := filepath.Join(dir, "fifo"), filepath.Join(dir, "link")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snap")
	os.Mkdir(snap, 0o700)
	if err := unix.Mkfifo(filepath.Join(snap, "ram"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := UseDir(snap, "ram"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("UseDir of a FIFO lock file: got %v, want ErrNotRegular", err)
	}
	if err := Use(fifo, func(io.Writer) error { return nil }); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Use of a FIFO: got %v, want ErrNotRegular", err)
	}
	if err := Use(link, func(io.Writer) error { return nil }); !errors.Is(err, ErrLink) {
		t.Errorf("Use of a link: got %v, want ErrLink", err)
	}
	if InUse(fifo) || InUse(link) {
		t.Error("a FIFO or a link counted as in use")
	}
}
