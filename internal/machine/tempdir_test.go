package machine

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tempChildEnv makes the test binary a driver that makes a temporary
// directory, prints it, and waits for its stdin to close (or for SIGKILL).
const tempChildEnv = "VMLAB_TEST_TEMPDIR_CHILD"

func init() {
	if mode := os.Getenv(tempChildEnv); mode != "" {
		os.Exit(tempChild(mode))
	}
}

func tempChild(mode string) int {
	dir, err := MakeTempDir("vmlab-child-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if mode == "keep" {
		KeepTempDir(dir)
	}
	fmt.Println(dir)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startTempChild starts a driver in mode ("own" or "keep") with $TMPDIR at tmp
// and returns it with the directory it made.
func startTempChild(t *testing.T, tmp, mode string) (*exec.Cmd, io.Closer, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), tempChildEnv+"="+mode, "TMPDIR="+tmp)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, tmp) {
		t.Fatalf("child: got %q, %v; want a directory in %s", line, err, tmp)
	}
	return cmd, stdin, strings.TrimSpace(line)
}

// TestSweepTempDirs kills drivers with SIGKILL and checks what a later
// sweep removes: only directories whose owner is gone.
func TestSweepTempDirs(t *testing.T) {
	tmp := t.TempDir()
	killed, _, killedDir := startTempChild(t, tmp, "own")
	_, _, liveDir := startTempChild(t, tmp, "own")
	kept, _, keptDir := startTempChild(t, tmp, "keep")
	exited, stdin, exitedDir := startTempChild(t, tmp, "own")
	for _, c := range []*exec.Cmd{killed, kept} {
		c.Process.Kill()
		c.Wait()
	}
	stdin.Close() // exits without removing its directory, as a panic would
	if err := exited.Wait(); err != nil {
		t.Fatal(err)
	}
	// Directories of a vmlab that wrote only its pid in the owner file.
	oldLive := oldStyleDir(t, tmp, os.Getppid())
	oldDead := oldStyleDir(t, tmp, killed.Process.Pid)

	removed := SweepTempDirs(tmp)
	slices.Sort(removed)
	want := []string{killedDir, exitedDir, oldDead}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	tests := []struct {
		name  string
		dir   string
		exist bool
	}{
		{"killed owner", killedDir, false},
		{"owner exited without removing", exitedDir, false},
		{"live owner", liveDir, true},
		{"kept for the user, owner killed", keptDir, true},
		{"older vmlab, pid alive", oldLive, true},
		{"older vmlab, pid gone", oldDead, false},
	}
	for _, tt := range tests {
		_, err := os.Stat(tt.dir)
		if got := err == nil; got != tt.exist {
			t.Errorf("%s: %s exists %v, want %v", tt.name, tt.dir, got, tt.exist)
		}
	}
}

func oldStyleDir(t *testing.T, tmp string, pid int) string {
	t.Helper()
	dir, err := os.MkdirTemp(tmp, "vmlab-old-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTempDirLifecycle: a directory this process removes or keeps is
// released, and a bad prefix is refused.
func TestTempDirLifecycle(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := MakeTempDir("vmlab-life-")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("got %v, %v; want a 0700 directory", fi, err)
	}
	if got := SweepTempDirs(os.TempDir()); len(got) != 0 {
		t.Errorf("swept our own live directory: %v", got)
	}
	if err := RemoveTempDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after RemoveTempDir: %v", err)
	}
	if owners[dir] != nil {
		t.Errorf("still holding the owner file of %s", dir)
	}
	if _, err := MakeTempDir("other-"); err == nil || !strings.Contains(err.Error(), "must start with vmlab-") {
		t.Errorf("got %v, want the prefix refused", err)
	}
}
