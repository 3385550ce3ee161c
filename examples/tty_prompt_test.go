package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTTYPrompt runs tty_prompt.star with `vmlab run` (typing at a prompt
// on tty1, the result found in the terminal's text and by OCR, a
// screenshot) and checks that its screenshot is saved and inline in
// report.html. It needs tesseract, which vmlab run checks when the file
// loads.
func TestTTYPrompt(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("tesseract"); err != nil {
		t.Skip("tesseract not installed")
	}
	out := filepath.Join(t.TempDir(), "out")
	b, err := vmlabRun(t, out, "tty_prompt.star")
	if err != nil || !strings.Contains(string(b), "1 passed") {
		t.Fatalf("vmlab run tty_prompt.star: got %v, want it to pass\n%s", err, b)
	}
	if shots, _ := filepath.Glob(filepath.Join(out, "*", "prompt.png")); len(shots) != 1 {
		t.Errorf("got %v, want one prompt.png under %s", shots, out)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(html), `<img class="shot" src="data:image/png;base64,`); got != 1 {
		t.Errorf("got %d screenshots inline in report.html, want 1", got)
	}
}
