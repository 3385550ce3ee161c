package qemu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVirtiofsArgs(t *testing.T) {
	shares := []Share{{Tag: "vmlab0", HostPath: "/usr", ReadOnly: true}, {Tag: "vmlab1", HostPath: "/srv/a,b", ReadOnly: true}}
	tests := []struct {
		name      string
		cfg       Config
		want, not []string
	}{
		{
			name: "two shares",
			cfg:  Config{Dir: "/run/a,b", FS: "virtiofs", MemoryMiB: 1024, Shares: shares},
			want: []string{
				"-object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem",
				"-chardev socket,id=vfs0,path=/run/a,,b/vfs0.sock -device vhost-user-fs-pci,chardev=vfs0,tag=vmlab0",
				"-chardev socket,id=vfs1,path=/run/a,,b/vfs1.sock -device vhost-user-fs-pci,chardev=vfs1,tag=vmlab1",
			},
			not: []string{"virtio-9p-pci", "-fsdev"},
		},
		{
			name: "default memory",
			cfg:  Config{Dir: "/d", FS: "virtiofs", Shares: shares[:1]},
			want: []string{"-m 512 ", "memory-backend-memfd,id=mem,size=512M,share=on"},
		},
		{
			name: "no shares, no shared memory",
			cfg:  Config{Dir: "/d", FS: "virtiofs"},
			not:  []string{"memory-backend", "-numa", "vhost-user-fs-pci"},
		},
		{
			name: "9p",
			cfg:  Config{Dir: "/d", Shares: shares[:1]},
			want: []string{"virtio-9p-pci,fsdev=fs0,mount_tag=vmlab0"},
			not:  []string{"memory-backend", "vhost-user-fs-pci"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Join(tt.cfg.Args(), " ")
			for _, w := range tt.want {
				if !strings.Contains(args, w) {
					t.Errorf("args lack %q:\n%s", w, args)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(args, n) {
					t.Errorf("args have %q:\n%s", n, args)
				}
			}
		})
	}
}

func TestVirtiofsdArgs(t *testing.T) {
	tests := []struct {
		name  string
		share Share
		want  []string
	}{
		{"static", Share{HostPath: "/usr", Static: true}, []string{"--fd=3", "source=/usr", "cache=always"}},
		{"may change", Share{HostPath: "/srv"}, []string{"source=/srv", "cache=auto"}},
		// FUSE's -o list splits at commas.
		{"comma", Share{HostPath: `/srv/a,b\c`}, []string{`source=/srv/a\,b\\c`}},
	}
	for _, tt := range tests {
		args := virtiofsdArgs(tt.share)
		for _, w := range tt.want {
			if !slices.Contains(args, w) {
				t.Errorf("%s: virtiofsdArgs(%+v) = %q, want %q among them", tt.name, tt.share, args, w)
			}
		}
	}
}

func TestFindVirtiofsd(t *testing.T) {
	if _, err := FindVirtiofsd("/nonexistent/virtiofsd"); err == nil || !strings.Contains(err.Error(), "/nonexistent/virtiofsd") {
		t.Errorf("got %v, want an error naming the path", err)
	}
}

// fakeEnv makes the test binary, started as QEMU or virtiofsd, play one of
// them: QEMU when its arguments are QEMU's, virtiofsd otherwise, in the mode
// the variable names (see fakeVirtiofsd).
const fakeEnv = "VMLAB_FAKE_VIRTIOFS"

func init() {
	if mode := os.Getenv(fakeEnv); mode != "" {
		if slices.Contains(os.Args, "-nodefaults") {
			os.Exit(fakeQEMU(os.Args[1:]))
		}
		os.Exit(fakeVirtiofsd(mode, os.Args[1:]))
	}
}

// fakeQEMU connects to every socket chardev on its command line, as QEMU
// does while it starts, and then runs until it is killed.
func fakeQEMU(args []string) int {
	for i, a := range args {
		if a != "-chardev" || !strings.HasPrefix(args[i+1], "socket,") {
			continue
		}
		_, path, _ := strings.Cut(args[i+1], ",path=")
		if _, err := net.Dial("unix", strings.ReplaceAll(path, ",,", ",")); err != nil {
			fmt.Fprintln(os.Stderr, "fake qemu:", err)
			return 1
		}
	}
	select {}
}

// fakeVirtiofsd accepts QEMU's connection on fd 3, then
//
//	write  tries to create a file in its source, reports how that went on
//	       stderr and exits 3
//	serve  waits for QEMU to hang up, as virtiofsd does
func fakeVirtiofsd(mode string, args []string) int {
	l, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake virtiofsd:", err)
		return 1
	}
	c, err := l.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake virtiofsd:", err)
		return 1
	}
	if mode == "serve" {
		io.Copy(io.Discard, c)
		return 0
	}
	var source string
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "source="); ok {
			source = s
		}
	}
	err = os.WriteFile(filepath.Join(source, "guest-write"), []byte("x"), 0o644)
	fmt.Fprintf(os.Stderr, "fake virtiofsd: write to the source: %v\n", err)
	return 3
}

// startFake starts the test binary as QEMU with one virtiofs share of dir,
// served by the test binary as virtiofsd in mode.
func startFake(t *testing.T, mode, dir string) (*Process, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("virtiofs needs root: its daemons start in a new mount namespace")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeEnv, mode)
	cfg := Config{
		Binary: exe, Virtiofsd: exe, FS: "virtiofs", Dir: t.TempDir(),
		Shares: []Share{{Tag: "vmlab0", HostPath: dir, ReadOnly: true}},
	}
	p, err := Start(t.Context(), cfg, io.Discard)
	if err == nil {
		t.Cleanup(p.Kill)
	}
	return p, err
}

// TestVirtiofsDaemonExits checks that a virtiofsd that exits takes QEMU
// down with an error that says so, and that it could not write its
// read-only source.
func TestVirtiofsDaemonExits(t *testing.T) {
	dir := t.TempDir()
	p, startErr := startFake(t, "write", dir)
	if startErr == nil {
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("qemu still runs 10 s after its virtiofsd exited")
		}
		startErr = p.Err()
	}
	// The daemon may exit before Start returns: then Start says it all.
	err := startErr.Error()
	for _, want := range []string{"killed", "virtiofsd for " + dir + " exited while qemu ran", "exit status 3", "read-only file system"} {
		if !strings.Contains(err, want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "guest-write")); err == nil {
		t.Error("virtiofsd wrote to its read-only source")
	}
}

// TestVirtiofsKill checks that Kill takes the daemons down with QEMU.
func TestVirtiofsKill(t *testing.T) {
	p, err := startFake(t, "serve", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pid := p.vfs.daemons[0].cmd.Process.Pid
	p.Kill()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("virtiofsd %d after Kill: got %v, want ESRCH (gone)", pid, err)
	}
	if strings.Contains(p.Err().Error(), "virtiofsd") {
		t.Errorf("a daemon killed with QEMU is reported: %v", p.Err())
	}
}
