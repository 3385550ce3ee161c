package examples

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsole runs console.star with `vmlab run` (typing into tty1, a
// screenshot) and a test that fails on a machine with a display, and
// checks the reports: both screenshots, the one asked for and the one
// taken on failure, are PNGs of the display, inline in report.html.
func TestConsole(t *testing.T) {
	bootsVMs(t)
	dir := t.TempDir()
	failing := filepath.Join(dir, "fails.star")
	if err := os.WriteFile(failing, []byte("desk = machine(display = True)\n\ndef test():\n    desk.succeed(\"false\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	b, err := vmlabRun(t, out, "console.star", failing)
	if err == nil || !strings.Contains(string(b), "1 passed, 1 failed") {
		t.Fatalf("vmlab run: got %v, want console.star to pass and fails.star to fail\n%s", err, b)
	}
	for _, name := range []string{"console.png", "failure-desk.png"} {
		shots, _ := filepath.Glob(filepath.Join(out, "*", name))
		if len(shots) != 1 {
			t.Errorf("got %v, want one %s under %s", shots, name, out)
			continue
		}
		data, err := os.ReadFile(shots[0])
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: %v", shots[0], err)
		} else if size := img.Bounds().Size(); size.X < 640 || size.Y < 400 {
			t.Errorf("%s: got a %v picture, want the display's, at least 640x400", shots[0], size)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(html), `<img class="shot" src="data:image/png;base64,`); got != 2 {
		t.Errorf("got %d screenshots inline in report.html, want 2", got)
	}
}
