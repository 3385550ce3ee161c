package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ocrStar types on tty1, reads the result by OCR, then waits for text that
// never comes. Upper-case words and digits: the console's 8x16 font has
// lower-case look-alikes (v read as u).
const ocrStar = `desk = machine(display = True)

def test():
    desk.send_chars("echo OCR $((6*7)) DONE\n")
    desk.wait_for_text("OCR 42 DONE")
    assert_in("OCR 42 DONE", desk.get_screen_text())
    assert_eq(len(desk.get_screen_text_variants()), 3)
    desk.wait_for_text("NEVER SHOWN", timeout = 3)
`

// TestOCR runs ocrStar with vmlab run and checks the reports of its
// timeout: the error shows the last text read and names the last
// screenshot, which report.html shows inline (with the screenshot taken
// because the test failed).
func TestOCR(t *testing.T) {
	bootsVMs(t)
	if _, err := exec.LookPath("tesseract"); err != nil {
		t.Skip("tesseract not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "ocr.star")
	if err := os.WriteFile(file, []byte(ocrStar), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	b, err := vmlabRun(t, out, file)
	if err == nil || !strings.Contains(string(b), "0 passed, 1 failed") {
		t.Fatalf("vmlab run: got %v, want the test to fail at its last wait\n%s", err, b)
	}
	shots, _ := filepath.Glob(filepath.Join(out, "*", "desk", "output", "screen-*.png"))
	if len(shots) != 1 {
		t.Fatalf("got %v, want the last screenshot of the wait saved\n%s", shots, b)
	}
	for _, w := range []string{`wait for screen text "NEVER SHOWN": timed out after 3s`, "--- last screen text ---", "OCR 42 DONE", "--- last screenshot ---"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("got output\n%s\nwant it to contain %q", b, w)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(html), `<img class="shot" src="data:image/png;base64,`); got != 2 {
		t.Errorf("got %d screenshots inline in report.html, want 2: the wait's last and the failure's", got)
	}
}
