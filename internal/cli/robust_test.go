package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestRunExit(t *testing.T) {
	term, cancelTerm := context.WithCancelCause(context.Background())
	cancelTerm(&interrupted{syscall.SIGTERM})
	intr, cancelIntr := context.WithCancelCause(context.Background())
	cancelIntr(&interrupted{os.Interrupt})
	bg := context.Background()
	tests := []struct {
		name      string
		ctx       context.Context
		res       results
		reportErr error
		want      int
	}{
		{"all passed", bg, results{}, nil, exitOK},
		{"a test failed", bg, results{failed: 2}, nil, exitFail},
		{"a test panicked", bg, results{failed: 2, internal: 1}, nil, exitInternal},
		{"reports not written", bg, results{}, errors.New("disk full"), exitInternal},
		{"SIGINT", intr, results{failed: 1, internal: 1}, nil, 130},
		{"SIGTERM", term, results{}, nil, 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runExit(tt.ctx, tt.res, tt.reportErr); got != tt.want {
				t.Errorf("got exit %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLoadTimeout: -timeout bounds a file's top level, which is a bad file
// (exit 2) when it never ends. The traceback names the line the loop was
// stopped at: any of the loop's (Starlark reports its statements' lines).
func TestLoadTimeout(t *testing.T) {
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := run("run", "-timeout", "1s", "testdata/loop.star")
		done <- result{code, stdout, stderr}
	}()
	select {
	case r := <-done:
		if r.code != exitUsage || !strings.Contains(r.stderr, "testdata/loop.star: its top level ran longer than 1s (-timeout)") ||
			!regexp.MustCompile(`testdata/loop\.star:[2-4]:\d+: in <toplevel>`).MatchString(r.stderr) {
			t.Errorf("got exit %d, stderr %q; want 2, the timeout and the line", r.code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vmlab run still loads the endless file 30 s after its 1 s -timeout")
	}
}

// TestLoadInterrupted: SIGINT and SIGTERM stop a file's endless top level;
// vmlab exits 128 + the signal's number.
func TestLoadInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// The test listens too, so that a signal sent before Main
			// listens does not end the test binary; it is sent again
			// until Main returns.
			own := make(chan os.Signal, 1)
			signal.Notify(own, sig)
			defer signal.Stop(own)
			done := make(chan int, 1)
			go func() {
				code, _, _ := run("run", "testdata/loop.star")
				done <- code
			}()
			deadline := time.After(20 * time.Second)
			resend := time.NewTicker(50 * time.Millisecond)
			defer resend.Stop()
			for {
				syscall.Kill(os.Getpid(), sig)
				select {
				case code := <-done:
					if want := 128 + int(sig); code != want {
						t.Errorf("got exit %d, want %d", code, want)
					}
					return
				case <-resend.C:
				case <-deadline:
					t.Fatalf("vmlab run still loads the endless file 20 s after %v", sig)
				}
			}
		})
	}
}

// TestRunMachineDiesInSetup: a guest that dies while its machine is set up
// fails its test with the console tail; the test running beside it (-j 2)
// keeps its result, the reports are written, and everything in the output
// directory is private to its owner; the error names the kernel panic
// (before: only "qemu exited"). Before: a nil-pointer panic, exit 2,
// no report.html or junit.xml, the passing test lost.
func TestRunMachineDiesInSetup(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	out := filepath.Join(t.TempDir(), "out") // vmlab creates it
	code, stdout, stderr := run("run", "-j", "2", "-out", out, "testdata/setupdies.star", "testdata/pass.star")
	if code != exitFail {
		t.Errorf("got exit %d, want 1 (a test failed)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"PASS pass.test_hostname", "FAIL setupdies.test_dies", "set up the machine", `machine is down: kernel panic "sysrq triggered crash"`, "console lines of", "1 passed, 1 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("terminal report lacks %q:\n%s", want, stdout)
		}
	}
	junit, err := os.ReadFile(filepath.Join(out, "junit.xml"))
	if err != nil || !strings.Contains(string(junit), `<testcase name="test_hostname" classname="pass"`) || !strings.Contains(string(junit), "sysrq") {
		t.Errorf("junit.xml: %v, want both tests and the failure's console:\n%s", err, junit)
	}
	if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
		t.Error(err)
	}
	checkPrivate(t, out)
}

// checkPrivate fails the test for any directory under root (root too) that
// is not 0700 and any file that is not 0600. A machine's hostview directory
// is 0700 and its contents keep the host's owners and modes, which QEMU
// exports to the guest as they are (docs/host-isolation.md): the 0700
// directory is what keeps other users out, so its contents are not walked.
func checkPrivate(t *testing.T, root string) {
	t.Helper()
	var files int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
		if d.IsDir() && d.Name() == "hostview" {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"events.jsonl", "junit.xml", "report.html", "setupdies.test_dies/vlan1.pcap", "setupdies.test_dies/vm/console.log"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("checked no %s: %v", f, err)
		}
	}
	t.Logf("%d files under %s, all private", files, root)
}
