package vmlab_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab"
)

// TestScreenText drives the OCR methods of the Go API on a machine with a
// display: the text typed on tty1 is found and read, and a wait for text
// that never comes fails t with the last text read and the screenshot.
func TestScreenText(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("tesseract"); err != nil {
		t.Skip("tesseract not installed")
	}
	m := vmlab.New(t).Machine("desk", vmlab.Display())
	m.SendChars(t, "echo OCR $((6*7)) DONE\n")
	m.WaitForText(t, "OCR 42 DONE", time.Minute)
	if text := m.GetScreenText(t); !strings.Contains(text, "OCR 42 DONE") {
		t.Errorf("GetScreenText: got %q, want it to contain OCR 42 DONE", text)
	}
	if texts := m.GetScreenTextVariants(t); len(texts) != 3 {
		t.Errorf("GetScreenTextVariants: got %q, want 3 texts", texts)
	}
	msgs := failures(t, func(tb testing.TB) { m.WaitForText(tb, "NEVER SHOWN", 3*time.Second) })
	if len(msgs) != 1 || !strings.Contains(msgs[0], "timed out after 3s") || !strings.Contains(msgs[0], "OCR 42 DONE") ||
		!strings.Contains(msgs[0], "--- last screenshot ---") {
		t.Errorf("got %q, want one failure with the last text read and the last screenshot", msgs)
	}
}
