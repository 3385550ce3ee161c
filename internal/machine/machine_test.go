package machine_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.Main(m) }

// TestMachine boots one machine and shares it across the subtests.
func TestMachine(t *testing.T) {
	shared := t.TempDir()
	os.WriteFile(filepath.Join(shared, "hello.txt"), []byte("from the host\n"), 0o644)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "alpha",
		Shares: []machine.Share{{HostPath: shared, GuestPath: "/mnt/shared"}}}})
	ctx := t.Context()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("booted in %v; guest stages %+v", m.BootTime(), m.Hello().Stages)

	t.Run("succeed and fail", func(t *testing.T) {
		tests := []struct {
			cmd     string
			succeed bool
			stdout  string
		}{
			{"echo hello", true, "hello\n"},
			{"hostname", true, "alpha\n"},
			{"cat /mnt/shared/hello.txt", true, "from the host\n"},
			{"false", false, ""},
			{"echo out; exit 7", false, "out\n"},
		}
		for _, tt := range tests {
			out, err := m.Succeed(ctx, tt.cmd)
			if (err == nil) != tt.succeed || out != tt.stdout {
				t.Errorf("Succeed(%q) = %q, %v; want %q, success %v", tt.cmd, out, err, tt.stdout, tt.succeed)
			}
			_, err = m.Fail(ctx, tt.cmd)
			if (err == nil) == tt.succeed {
				t.Errorf("Fail(%q): got error %v, want success %v", tt.cmd, err, !tt.succeed)
			}
		}
		var exitErr *machine.ExitError
		_, err := m.Succeed(ctx, "echo oops >&2; exit 3")
		if !errors.As(err, &exitErr) || exitErr.Status != 3 || exitErr.Stderr != "oops\n" {
			t.Errorf("got %v, want an ExitError with status 3 and stderr %q", err, "oops\n")
		}
	})

	t.Run("options", func(t *testing.T) {
		out, err := m.Succeed(ctx, "id -un; pwd; echo $FOO; cat", machine.User("nobody"), machine.Dir("/tmp"),
			machine.Env("FOO=bar"), machine.Stdin(strings.NewReader("from stdin\n")))
		want := "nobody\n/tmp\nbar\nfrom stdin\n"
		if err != nil || out != want {
			t.Errorf("got %q, %v; want %q", out, err, want)
		}
	})

	t.Run("host secrets hidden and host unchanged", func(t *testing.T) {
		out, err := m.Succeed(ctx, "ls -A /root /home; touch /usr/vmlab-guest-write /mnt/shared/guest-file && echo written")
		if err != nil || out != "/home:\n\n/root:\nwritten\n" {
			t.Errorf("got %q, %v", out, err)
		}
		for _, p := range []string{"/usr/vmlab-guest-write", filepath.Join(shared, "guest-file")} {
			if _, err := os.Stat(p); err == nil {
				os.Remove(p)
				t.Errorf("a guest write reached the host: %s", p)
			}
		}
	})

	t.Run("timeout kills the command", func(t *testing.T) {
		start := time.Now()
		_, err := m.Succeed(ctx, "sleep 600", machine.Timeout(time.Second))
		var te *machine.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "sleep 600") {
			t.Errorf("got %v, want a TimeoutError naming the command", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("the 1 s timeout took %v", d)
		}
		if _, err := m.Fail(ctx, "pgrep -x sleep"); err != nil {
			t.Errorf("the timed-out command survived: %v", err)
		}
	})

	t.Run("background process does not hang the command", func(t *testing.T) {
		r, err := m.Execute(ctx, "sleep 300 & echo started")
		if err != nil || r.Stdout != "started\n" || !r.Detached {
			t.Errorf("got %+v, %v; want stdout %q, detached", r, err, "started\n")
		}
		m.Succeed(ctx, "pkill -x sleep; true")
	})

	t.Run("100 concurrent commands", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 100 {
			wg.Go(func() {
				out, err := m.Succeed(ctx, fmt.Sprintf("echo %d; echo err%d >&2", i, i))
				if err != nil || out != fmt.Sprintf("%d\n", i) {
					errs <- fmt.Errorf("command %d: got %q, %v", i, out, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("100 MB of output arrives byte-exact in its file", func(t *testing.T) {
		// Over OutputLimit: the call fails, and the file holds it all.
		r, err := m.Execute(ctx, "head -c 100000000 /dev/urandom >/tmp/big; sha256sum /tmp/big >&2; cat /tmp/big")
		var oe *machine.OutputError
		if !errors.As(err, &oe) || r.Status != 0 {
			t.Fatalf("got %v, status %d; want an *OutputError", err, r.Status)
		}
		b, err := os.ReadFile(r.StdoutFile)
		got := fmt.Sprintf("%x", sha256.Sum256(b))
		want, _, _ := strings.Cut(r.Stderr, " ")
		if err != nil || len(b) != 100000000 || got != want {
			t.Errorf("got %d bytes with sha256 %s (%v), want 100000000 bytes with %s", len(b), got, err, want)
		}
		m.Succeed(ctx, "rm /tmp/big")
	})

	t.Run("binary output", func(t *testing.T) {
		out, err := m.Succeed(ctx, `printf 'a\000b\377\376\nc'`)
		if err != nil || out != "a\x00b\xff\xfe\nc" {
			t.Errorf("got %q, %v", out, err)
		}
	})

	t.Run("waits", func(t *testing.T) {
		if _, err := m.Succeed(ctx, "(sleep 1; touch /tmp/later) >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitForFile(ctx, "/tmp/later", 30*time.Second); err != nil {
			t.Error(err)
		}
		if _, err := m.Succeed(ctx, "busybox httpd -f -p 8080 -h /tmp >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitForOpenPort(ctx, "", 8080, time.Minute); err != nil {
			t.Error(err)
		}
		m.Succeed(ctx, "pkill -f 'httpd -f -p 8080'")
		if err := m.WaitForClosedPort(ctx, "", 8080, 30*time.Second); err != nil {
			t.Error(err)
		}
		m.Succeed(ctx, "python3 -c 'import socket,time; s=socket.socket(socket.AF_UNIX); s.bind(\"/tmp/sock\"); s.listen(); time.sleep(60)' >/dev/null 2>&1 &")
		if err := m.WaitForOpenUnixSocket(ctx, "/tmp/sock", 30*time.Second); err != nil {
			t.Error(err)
		}
		out, err := m.WaitUntilSucceeds(ctx, "test -e /tmp/later && echo there", 10*time.Second)
		if err != nil || out != "there\n" {
			t.Errorf("WaitUntilSucceeds: got %q, %v", out, err)
		}
		if _, err := m.WaitUntilFails(ctx, "test -e /tmp/never", 10*time.Second); err != nil {
			t.Error(err)
		}
		err = m.WaitForFile(ctx, "/tmp/never", 500*time.Millisecond)
		var te *machine.TimeoutError
		if !errors.As(err, &te) {
			t.Errorf("waiting for a missing file: got %v, want a TimeoutError", err)
		}
	})

	t.Run("console text", func(t *testing.T) {
		m.Succeed(ctx, "echo vmlab-console-marker-1 > /dev/console")
		line, err := m.WaitForConsoleText(ctx, `marker-\d`, 30*time.Second)
		if err != nil || !strings.Contains(line, "vmlab-console-marker-1") {
			t.Errorf("got %q, %v", line, err)
		}
	})

	t.Run("the kernel tells a segfault on the console", func(t *testing.T) {
		// The boot is quiet; after it the kernel's informational messages
		// reach the console, where failures show them.
		m.Execute(ctx, `python3 -c 'import ctypes; ctypes.string_at(0)'`)
		if _, err := m.WaitForConsoleText(ctx, `python3\[\d+\]: segfault at 0 `, 30*time.Second); err != nil {
			t.Error(err)
		}
	})

	t.Run("copy both ways", func(t *testing.T) {
		src := t.TempDir()
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\necho copied\n"), 0o755)
		if err := m.CopyFromHost(ctx, src, "/opt/copied"); err != nil {
			t.Fatal(err)
		}
		if out, err := m.Succeed(ctx, "/opt/copied/sub/run.sh"); err != nil || out != "copied\n" {
			t.Errorf("got %q, %v", out, err)
		}
		m.Succeed(ctx, "mkdir -p /tmp/out && echo result > /tmp/out/r.txt && chmod 640 /tmp/out/r.txt")
		dst := filepath.Join(t.TempDir(), "out")
		if err := m.CopyFromMachine(ctx, "/tmp/out", dst); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dst, "r.txt"))
		info, _ := os.Stat(filepath.Join(dst, "r.txt"))
		if err != nil || string(b) != "result\n" || info.Mode().Perm() != 0o640 {
			t.Errorf("got %q, %v, mode %v", b, err, info.Mode())
		}
	})

	t.Run("reboot", func(t *testing.T) {
		if err := m.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		// The machine's disk keeps what the guest wrote, as NixOS's.
		if out, err := m.Succeed(ctx, "test -e /opt/copied && echo kept || echo fresh"); err != nil || out != "kept\n" {
			t.Errorf("after reboot: got %q, %v; want the copied files kept", out, err)
		}
	})

	t.Run("shutdown then lazy start", func(t *testing.T) {
		if err := m.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if out, err := m.Succeed(ctx, "echo back"); err != nil || out != "back\n" {
			t.Errorf("after shutdown: got %q, %v", out, err)
		}
	})
}

// TestMachineDies checks that a machine that dies is reported at once, with
// the console tail, instead of at some timeout.
func TestMachineDies(t *testing.T) {
	t.Parallel() // long: beside another, after the sequential tests
	ctx := t.Context()
	t.Run("kernel panic", func(t *testing.T) {
		m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "panicky"}})
		t.Cleanup(m.HoldSupervision())
		checkPanicStaysDown(t, m)
	})
	t.Run("kernel panic after a restore", func(t *testing.T) {
		// A machine restored from a snapshot that dies stays down as a
		// cold-booted one does (issue 16: a later call booted it again).
		boot := vmtest.Boot(t)
		b, err := machine.PrepareBoot(machine.BootOptions{Agent: vmtest.Agent(t), Accel: boot.Accel.Name,
			FS: "9p", Snapshot: "on", SnapshotDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var logs []string
		m, err := machine.New(machine.Config{Boot: b, Machine: spec.Machine{Name: "panicky"},
			Logf: func(f string, a ...any) {
				mu.Lock()
				logs = append(logs, fmt.Sprintf(f, a...))
				mu.Unlock()
				t.Logf(f, a...)
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		t.Cleanup(m.HoldSupervision())
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		cold := strings.Contains(strings.Join(logs, "\n"), "cold boot")
		mu.Unlock()
		if cold {
			t.Fatal("the machine booted cold, want it restored from the snapshot")
		}
		checkPanicStaysDown(t, m)
		mu.Lock()
		defer mu.Unlock()
		if n := strings.Count(strings.Join(logs, "\n"), "booting"); n != 1 {
			t.Errorf("the machine booted %d times, want once:\n%s", n, strings.Join(logs, "\n"))
		}
	})
	t.Run("qemu killed from outside", func(t *testing.T) {
		m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "victim"}})
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := m.Succeed(ctx, "sleep 600")
			done <- err
		}()
		// The command is running once the guest's process list has it.
		if _, err := m.WaitUntilSucceeds(ctx, "pgrep -x sleep", time.Minute); err != nil {
			t.Fatal(err)
		}
		pid := qemuPid(t, m)
		if err := killProcess(pid); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			var de *machine.DownError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), "killed") {
				t.Errorf("got %v, want a DownError saying qemu was killed", err)
			} else if de.Reason != "" {
				t.Errorf("got reason %q for a killed qemu, want none (the console said nothing)", de.Reason)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the command in flight hung after qemu was killed")
		}
	})
	t.Run("agent never answers", func(t *testing.T) {
		busybox := "/bin/busybox"
		if _, err := os.Stat(busybox); err != nil {
			t.Skip("needs busybox-static as a stand-in init that never answers")
		}
		boot := *vmtest.Boot(t)
		b, err := machine.PrepareBoot(machine.BootOptions{Agent: busybox, Accel: boot.Accel.Name})
		if err != nil {
			t.Fatal(err)
		}
		m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "silent"}, Boot: b, BootTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		err = m.Start(ctx)
		var te *machine.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "silent") {
			t.Errorf("got %v, want a TimeoutError naming the machine", err)
		}
	})
}

// checkPanicStaysDown panics m's kernel and checks the DownError says so,
// at once, and that the machine stays down: it needs no boot, and a later
// call gets the same DownError. m's supervision is held
// (HoldSupervision), so the later calls come before the supervisor
// records the exit, as they may without the hold.
func checkPanicStaysDown(t *testing.T, m *machine.Machine) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	_, err := m.Succeed(ctx, "echo c > /proc/sysrq-trigger; sleep 600")
	var de *machine.DownError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a DownError", err)
	}
	if !strings.Contains(err.Error(), "sysrq") || !strings.Contains(err.Error(), "panicky") {
		t.Errorf("error does not name the machine and show the panic:\n%v", err)
	}
	const reason = `kernel panic "sysrq triggered crash"`
	if de.Reason != reason {
		t.Errorf("got reason %q, want %q", de.Reason, reason)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("took %v to notice", d)
	}
	if st, err := m.Status(); st != machine.StatusFailed || !errors.As(err, &de) || de.Reason != reason {
		t.Errorf("status right after the DownError: got %v, %v; want failed, with reason %q", st, err, reason)
	}
	if m.NeedsBoot() {
		t.Fatal("NeedsBoot is true right after the DownError, want false: the machine died")
	}
	if _, err := m.Succeed(ctx, "true"); !errors.As(err, &de) || de.Reason != reason {
		t.Errorf("a later call: got %v, want the DownError again, with reason %q", err, reason)
	}
}
