package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// extract writes an archive's directories, files and links under dir.
func extract(t *testing.T, files map[string]entry, order []entry, dir string) {
	t.Helper()
	for _, e := range order {
		p := filepath.Join(dir, e.name)
		var err error
		switch e.mode &^ 0o7777 {
		case modeDir:
			err = os.MkdirAll(p, fs.FileMode(e.mode&0o777))
		case modeRegular:
			err = os.WriteFile(p, e.data, fs.FileMode(e.mode&0o777))
		case modeSymlink:
			err = os.Symlink(string(e.data), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBuildShell: with Spec.Shell, the archive holds a copy of the host's
// bash that runs on its own, in the C.UTF-8 locale, at its host path, and
// the manifest names the host's file. Without a fork server there is none,
// and a shell that cannot be copied fails with ErrShellCopy.
func TestBuildShell(t *testing.T) {
	const bash = "/bin/bash"
	host, err := os.Stat(bash)
	if err != nil {
		t.Skip("the host has no /bin/bash to copy")
	}
	so := filepath.Join(t.TempDir(), "forksrv.so")
	if err := os.WriteFile(so, []byte("a builtin"), 0o644); err != nil {
		t.Fatal(err)
	}
	init := writeInit(t, floorInit())
	path, err := Build(Spec{Init: init, ForkServer: so, Shell: bash}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	order := readArchive(t, b)
	files := byName(order)
	want := fmt.Sprintf("%s %d %d\n", bash, host.Size(), host.ModTime().UnixNano())
	if e := files["forksrv.shell"]; string(e.data) != want {
		t.Errorf("forksrv.shell: %q, want %q", e.data, want)
	}
	for _, name := range []string{"init", "forksrv.so", "modules/order", "dev/console"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the archive lost its own %s", name)
		}
	}

	// The copy runs alone: chroot into it.
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	dir := t.TempDir()
	extract(t, files, order, dir)
	cmd := exec.Command("chroot", dir, bash, "-euo", "pipefail", "-c", `x=é; echo "${#x} $BASH_VERSION"`)
	cmd.Env = []string{"LANG=C.UTF-8", "PATH=/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the copy did not run: %v: %s", err, out)
	}
	ver, err := exec.Command(bash, "-c", `echo "$BASH_VERSION"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "1 "+string(ver); got != want {
		t.Errorf("the copy said %q, want %q (one character: the UTF-8 locale)", got, want)
	}

	path, err = Build(Spec{Init: init, Shell: bash}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if files := readBuilt(t, path); len(files["forksrv.shell"].data) != 0 || len(files["usr/lib/locale"].name) != 0 {
		t.Error("an archive without a fork server has the shell's copy")
	}
	_, err = Build(Spec{Init: init, ForkServer: so, Shell: "/nonexistent/bash"}, t.TempDir())
	if !errors.Is(err, ErrShellCopy) || !strings.Contains(err.Error(), "/nonexistent/bash") {
		t.Errorf("a missing shell: %v, want ErrShellCopy naming it", err)
	}
	defer func(d []string) { localeDirs = d }(localeDirs)
	localeDirs = []string{"/nonexistent/C.utf8"}
	_, err = Build(Spec{Init: init, ForkServer: so, Shell: bash}, t.TempDir())
	if !errors.Is(err, ErrShellCopy) || !strings.Contains(err.Error(), "no C.UTF-8 locale") {
		t.Errorf("a host without the C.UTF-8 locale: %v, want ErrShellCopy saying so", err)
	}
}
