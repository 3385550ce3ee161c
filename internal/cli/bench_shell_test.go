package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestBenchShellKey(t *testing.T) {
	b, err := json.Marshal(&benchResult{shellBench: shellBench{ShellRTTMS: 12.5}})
	if err != nil || !strings.Contains(string(b), `"shell_rtt_ms":12.5`) {
		t.Errorf("got %s, %v; want shell_rtt_ms in it", b, err)
	}
}

// TestBenchShellVM measures shells through a real control socket (one boot).
func TestBenchShellVM(t *testing.T) {
	boot := vmtest.Boot(t)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	var s shellBench
	var stderr bytes.Buffer
	if err := s.benchShell(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, bootFlags{memory: 512, cpus: 1}); err != nil {
		t.Fatalf("bench shell: %v", err)
	}
	if s.ShellRTTMS <= 0 || s.ShellDirectMS <= 0 {
		t.Errorf("got shell_rtt_ms %v, shell_direct_ms %v; want both measured", s.ShellRTTMS, s.ShellDirectMS)
	}
	t.Logf("shell_rtt_ms %.2f, shell_direct_ms %.2f", s.ShellRTTMS, s.ShellDirectMS)
}
