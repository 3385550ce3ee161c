package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	vmtest.Cleanup()
	os.Exit(code)
}

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
		{[]string{"help"}, exitOK, "commands:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"exec"}, exitUsage, "usage: vmlab exec"},
		{[]string{"exec", "-nosuchflag", "true"}, exitUsage, "flag provided but not defined"},
		{[]string{"exec", "-accel", "hvf", "true"}, exitFail, `unknown accelerator "hvf"`},
		{[]string{"bench", "extra"}, exitUsage, "usage: vmlab bench"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := run(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
	if code, _, stderr := run("help"); strings.Contains(stderr, "guest-listen") {
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

	code, stdout, stderr = run("bench", "-json", "-runs", "1", "-n", "20", "-net-seconds", "1", "-net-rounds", "1")
	if code != exitOK {
		t.Fatalf("bench: exit %d, stderr %s", code, stderr)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(stdout), &fields); err != nil {
		t.Fatalf("bench -json printed %q: %v", stdout, err)
	}
	for _, k := range []string{"floor_s", "boot_s", "boot_ratio", "rtt_median_ms", "rtt_p99_ms", "wait_latency_ms", "accel",
		"switch_mbps", "mcast_mbps", "throughput_ratio", "switch_rtt_ms", "mcast_rtt_ms"} {
		v, ok := fields[k]
		if !ok {
			t.Errorf("bench -json lacks %q", k)
		}
		if f, isNum := v.(float64); isNum && f <= 0 {
			t.Errorf("bench -json %s = %v, want a positive figure", k, f)
		}
	}
}
