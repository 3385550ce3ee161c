package examples

import (
	"bytes"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestXTerminal runs x_terminal.star with vmlab run, as it is (fast mode)
// and with init = "systemd": Xorg on the display, an xterm, keys typed
// into it and its output read back by OCR. It checks that both pass and
// kept a screenshot of the display, and logs the time each took.
func TestXTerminal(t *testing.T) {
	bootsVMs(t)
	for _, prog := range []string{"Xorg", "xinit", "xterm", "tesseract"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not installed (scripts/deps installs it)", prog)
		}
	}
	src, err := os.ReadFile("x_terminal.star")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	systemd := filepath.Join(dir, "x_terminal_systemd.star")
	text := strings.Replace(string(src), "    display = True,\n", "    display = True,\n    init = \"systemd\",\n", 1)
	if text == string(src) {
		t.Fatal("x_terminal.star declares no `    display = True,` line to add init = \"systemd\" to")
	}
	if err := os.WriteFile(systemd, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	start := time.Now()
	b, err := vmlabRun(t, out, "x_terminal.star", systemd)
	if err != nil || !strings.Contains(string(b), "2 passed, 0 failed") {
		t.Fatalf("vmlab run: got %v, want both tests to pass\n%s", err, b)
	}
	t.Logf("both runs took %v", time.Since(start))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "PASS ") {
			t.Log(line)
		}
	}
	for _, test := range []string{"x_terminal.test", "x_terminal_systemd.test"} {
		data, err := os.ReadFile(filepath.Join(out, test, "xterm.png"))
		if err != nil {
			t.Errorf("%s: %v", test, err)
			continue
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s: xterm.png: %v", test, err)
		} else if size := img.Bounds().Size(); size.X != 1280 || size.Y != 800 {
			t.Errorf("%s: got a %v screenshot, want the display's 1280x800", test, size)
		}
	}
}
