package machine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestDiskKeepsRoot boots one machine and stops it in each of the ways a
// test can: what the guest wrote (in /root, /home, /tmp, and in /etc over
// the host's files) is there after reboot(), crash() + start() and
// shutdown() + start(), and the declared setup applies again on the kept
// disk: the user exists (useradd would refuse it: the boot failed), the
// declared file is rewritten. Before the machine had a disk, every boot
// started from an empty root in memory.
func TestDiskKeepsRoot(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	ctx := t.Context()
	// A run killed before it closed its machines left a disk in the
	// machine's directory, which a new run uses again (vmlab run -out):
	// the new machine must not boot from it.
	dir := t.TempDir()
	stale := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, "stale"), []byte("from a killed run\n"), 0o644)
	img := filepath.Join(dir, "root.img")
	os.WriteFile(img, nil, 0o600)
	os.Truncate(img, 64<<20)
	if out, err := exec.Command(e2tool(t, "mke2fs"), "-q", "-F", "-t", "ext4", "-d", filepath.Dir(stale), img).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	m := vmtest.Machine(t, machine.Config{Dir: dir, Machine: spec.Machine{Name: "keeper", DiskMiB: 64,
		Setup: spec.Setup{Users: []spec.Account{{Name: "alice", Groups: []string{"staff"}}},
			Files: []spec.File{{Path: "/etc/declared.conf", Content: "declared\n"}}}}})
	succeed := func(t *testing.T, cmd string) string {
		t.Helper()
		out, err := m.Succeed(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// write leaves a file in each kind of place, and spoils the declared
	// file, which the next boot must rewrite.
	write := func(t *testing.T, tag string) {
		t.Helper()
		succeed(t, "for d in /root /home/alice /tmp /etc /var/lib; do echo "+tag+" > $d/kept-"+tag+"; done; "+
			"echo spoiled > /etc/declared.conf; sync")
	}
	check := func(t *testing.T, tag string) {
		t.Helper()
		out := succeed(t, "cat /root/kept-"+tag+" /home/alice/kept-"+tag+" /tmp/kept-"+tag+
			" /etc/kept-"+tag+" /var/lib/kept-"+tag+"; cat /etc/declared.conf; id -nG alice")
		want := strings.Repeat(tag+"\n", 5) + "declared\nalice staff\n"
		if out != want {
			t.Errorf("after the boot: got\n%s\nwant\n%s", out, want)
		}
	}
	t.Run("stale disk", func(t *testing.T) {
		if out := succeed(t, "test -e /stale && echo stale || echo new"); out != "new\n" {
			t.Errorf("got %q, want a new disk", out)
		}
	})
	t.Run("reboot", func(t *testing.T) {
		write(t, "reboot")
		if err := m.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, "reboot")
	})
	t.Run("crash", func(t *testing.T) {
		write(t, "crash")
		m.Crash()
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, "crash")
	})
	t.Run("shutdown", func(t *testing.T) {
		write(t, "shutdown")
		if err := m.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// A clean shutdown leaves the disk's file system clean: the
		// root was remounted read-only before the power-off.
		out, err := exec.Command(e2tool(t, "dumpe2fs"), "-h", filepath.Join(m.Dir(), "root.img")).CombinedOutput()
		if err != nil || strings.Contains(string(out), "needs_recovery") || !regexp.MustCompile(`state:\s+clean\n`).Match(out) {
			t.Errorf("the disk after Shutdown: %v\n%s\nwant a clean file system that needs no recovery", err, out)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, "shutdown")
	})
	// The disk is 64 MiB: filling it is ENOSPC in the guest, at once,
	// and the machine goes on (QEMU does not pause it).
	t.Run("full", func(t *testing.T) {
		res, err := m.Execute(ctx, "dd if=/dev/zero of=/root/fill bs=1M count=100 2>&1")
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == 0 || !strings.Contains(res.Stdout, "No space left on device") {
			t.Errorf("dd on a full disk: exit %d, output %q; want a failure with ENOSPC", res.Status, res.Stdout)
		}
		succeed(t, "rm /root/fill && echo room > /root/after-full && cat /root/after-full")
	})
}

// e2tool finds an e2fsprogs tool on the host (in /sbin when PATH lacks it).
func e2tool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// TestDiskHostFull puts a machine's disk image on a host file system too
// small for it (a 12 MiB tmpfs under a 64 MiB sparse image): when the
// host cannot write, the guest gets an I/O error and goes on answering
// (werror=report), where QEMU's default would pause the VM and hang the
// test.
func TestDiskHostFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	ctx := t.Context()
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=12m,mode=0700"); err != nil {
		t.Skipf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	m := vmtest.Machine(t, machine.Config{DiskImage: filepath.Join(small, "full.img"),
		Machine: spec.Machine{Name: "hostfull", DiskMiB: 64}})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The dd takes 0.3 s under TCG; a paused VM would never answer.
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := m.Execute(dctx, "dd if=/dev/zero of=/root/big bs=1M count=30 conv=fsync 2>&1")
	if err != nil {
		t.Fatalf("dd with the host's file system full: %v (a paused VM?)", err)
	}
	t.Logf("dd: %q", res.Stdout)
	if res.Status == 0 || !strings.Contains(res.Stdout, "error") {
		t.Errorf("dd with the host's file system full: exit %d, output %q; want an I/O error", res.Status, res.Stdout)
	}
	if out, err := m.Succeed(ctx, "echo still here"); err != nil || out != "still here\n" {
		t.Errorf("after the error: got %q, %v; want the machine answering", out, err)
	}
}
