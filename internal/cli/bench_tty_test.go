package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestBenchTTYKey(t *testing.T) {
	b, err := json.Marshal(&benchResult{ttyBench: ttyBench{TTYTextMS: 3.5}})
	if err != nil || !strings.Contains(string(b), `"tty_text_ms":3.5`) {
		t.Errorf("got %s, %v; want tty_text_ms in it", b, err)
	}
}

// TestBenchTTYVM measures get_tty_text on a real machine (one boot).
func TestBenchTTYVM(t *testing.T) {
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "tty"}, Dir: t.TempDir()})
	var b ttyBench
	var stderr bytes.Buffer
	if err := b.benchTTY(t.Context(), &env{stdout: &stderr, stderr: &stderr}, m); err != nil {
		t.Fatalf("bench tty: %v", err)
	}
	if b.TTYTextMS <= 0 {
		t.Errorf("got tty_text_ms %v, want it measured", b.TTYTextMS)
	}
	t.Logf("tty_text_ms %.2f", b.TTYTextMS)
}
