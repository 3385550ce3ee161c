package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/script"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.Main(m) }

func run(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, exitUsage, "usage: vmlab COMMAND"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"exec"}, exitUsage, "usage: vmlab exec"},
		{[]string{"exec", "-nosuchflag", "true"}, exitUsage, "flag provided but not defined"},
		{[]string{"exec", "-accel", "hvf", "true"}, exitFail, `unknown accelerator "hvf"`},
		{[]string{"bench", "extra"}, exitUsage, "usage: vmlab bench"},
		{[]string{"exec", "-screen", "vcn", "true"}, exitFail, `prepare boot: screen: unknown screen "vcn" (want vnc, window or none)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := run(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
	if code, stdout, _ := run("help"); strings.Contains(stdout, "guest-listen") {
		t.Errorf("help (exit %d) lists the hidden benchmark helper", code)
	}
}

// TestExecAndBench boots real VMs through the CLI.
func TestExecAndBench(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	code, stdout, stderr := run("exec", "-name", "cli", "echo hello from $(hostname); exit 3")
	if code != 3 || stdout != "hello from cli\n" {
		t.Errorf("exec: got exit %d, stdout %q (stderr %q); want 3, %q", code, stdout, stderr, "hello from cli\n")
	}
	if !strings.Contains(stderr, "accelerator") {
		t.Errorf("exec did not say which accelerator runs the VM: %q", stderr)
	}

	// The sections with VM tests of their own (TestBenchSystemdVM,
	// TestBenchImageVM, TestBenchLabVM, TestBenchRestore,
	// TestBenchCoverageVM, TestBenchScaleVM) are skipped here: they took
	// most of this test's five minutes.
	code, stdout, stderr = run("bench", "-json", "-runs", "1", "-n", "20", "-net-seconds", "1", "-net-rounds", "1", "-output", "64",
		"-systemd=false", "-image", "", "-lab=false", "-restore=false", "-coverage-example", "", "-shard-files", "",
		"-example", "../../examples/client_server.star")
	if code != exitOK {
		t.Fatalf("bench: exit %d, stderr %s", code, stderr)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(stdout), &fields); err != nil {
		t.Fatalf("bench -json printed %q: %v", stdout, err)
	}
	for _, k := range []string{"floor_s", "boot_s", "boot_ratio", "rtt_median_ms", "rtt_p99_ms", "wait_latency_ms", "accel",
		"channel_rtt_ms", "process_floor_ms", "switch_mbps", "mcast_mbps", "throughput_ratio", "switch_rtt_ms", "mcast_rtt_ms", "output_peak_mib", "output_base_mib", "pty_echo_ms",
		"run_s", "run_cold_s"} {
		v, ok := fields[k]
		if !ok {
			t.Errorf("bench -json lacks %q", k)
		}
		if f, isNum := v.(float64); isNum && f <= 0 {
			t.Errorf("bench -json %s = %v, want a positive figure", k, f)
		}
	}
}

// TestRunFiles runs test files through `vmlab run`: exit codes, reports.
func TestRunFiles(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	t.Run("bad file", func(t *testing.T) {
		code, _, stderr := run("run", "testdata/bad.star", "testdata/pass.star")
		if code != exitUsage || !strings.Contains(stderr, "testdata/bad.star:1:") || !strings.Contains(stderr, "memroy") {
			t.Errorf("got exit %d, stderr %q; want 2 and the bad line", code, stderr)
		}
	})
	t.Run("pass and fail", func(t *testing.T) {
		out := t.TempDir()
		junit := filepath.Join(t.TempDir(), "junit.xml")
		code, stdout, stderr := run("run", "-out", out, "-junit", junit, "testdata/pass.star", "testdata/fail.star")
		if code != exitFail {
			t.Errorf("got exit %d, want 1 (one test fails)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"1 passed, 1 failed", "exit status 5", "about to fail", "fail.star:4"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("terminal report lacks %q:\n%s", want, stdout)
			}
		}
		for _, f := range []string{"events.jsonl", "junit.xml", "report.html", "pass.test_hostname/vm/console.log"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("output: %v", err)
			}
		}
		if _, err := os.Stat(junit); err != nil {
			t.Errorf("-junit: %v", err)
		}
	})
	t.Run("extra disk", func(t *testing.T) {
		code, stdout, stderr := run("run", "testdata/disk.star")
		if code != exitOK {
			t.Errorf("got exit %d\n%s\n%s", code, stdout, stderr)
		}
	})
	t.Run("test timeout", func(t *testing.T) {
		code, stdout, stderr := run("run", "-timeout", "8s", "testdata/hang.star")
		// The test may still be booting after 8 s on a busy machine, or be
		// in its long command; either way the error says why it stopped.
		if code != exitFail || !strings.Contains(stdout, "stopped: test hang.test_hangs timed out after 8s") {
			t.Errorf("got exit %d, want 1 and the test's timeout as the cause\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("list a directory", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"pass.star", "fail.star", "hang.star"} {
			data, err := os.ReadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, f), data, 0o644)
		}
		// "^hang\." picks a file by its name, "hostname" a function.
		code, stdout, stderr := run("run", "-list", "-run", `^hang\.|hostname`, dir)
		if code != exitOK || stdout != "hang.test_hangs\npass.test_hostname\n" {
			t.Errorf("got exit %d, stdout %q, stderr %q; want the two matching tests", code, stdout, stderr)
		}
	})
	t.Run("select", func(t *testing.T) {
		code, _, stderr := run("run", "-run", "nomatch", "testdata/pass.star")
		if code != exitUsage || !strings.Contains(stderr, "no test matches") {
			t.Errorf("got exit %d, stderr %q", code, stderr)
		}
	})
}

func TestDefaultJobs(t *testing.T) {
	if got := availableMiB(); got <= 0 {
		t.Fatalf("availableMiB: got %d, want the machine's available memory", got)
	}
	if j := defaultJobs(nil, 512); j < 1 {
		t.Errorf("defaultJobs with no files: got %d, want at least 1", j)
	}
	huge := &script.File{Specs: []spec.Machine{{Name: "big", MemoryMiB: 1 << 30}}}
	if j := defaultJobs([]*script.File{huge}, 512); j != 1 {
		t.Errorf("a test needing more memory than there is: got %d jobs, want 1", j)
	}
}
