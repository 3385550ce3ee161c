package machine_test

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/ocr"
	"github.com/vmlab/vmlab/internal/spec"
)

// consoleFixture is a real screendump of the kernel's console (see
// internal/ocr/testdata/README.md), with "hello world" on it.
var consoleFixture = filepath.Join("..", "ocr", "testdata", "console-720x400.png")

func needTesseract(t *testing.T) {
	t.Helper()
	if ocr.Available() != nil {
		t.Skip("tesseract not installed (apt-get install tesseract-ocr, or scripts/deps)")
	}
}

// screenMachine is a fake machine with a display whose screendumps write
// the files of screens in turn, the last one again after the list.
func screenMachine(t *testing.T, screens ...string) (*machine.Machine, string) {
	t.Helper()
	t.Setenv(fakeScreensEnv, strings.Join(screens, string(os.PathListSeparator)))
	dir := t.TempDir()
	return fakeMachineConfig(t, "serve", machine.Config{Machine: spec.Machine{Display: true}, Dir: dir}), dir
}

// plainScreen writes a 320x200 PNG of one colour and returns its path.
func plainScreen(t *testing.T, grey uint8) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 320, 200))
	for i := range img.Pix {
		img.Pix[i] = grey
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plain.png")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// screendumps counts the screendumps the fake QEMU was asked for.
func screendumps(t *testing.T, dir string) int {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(dir, fakeQMPLog))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(log), "screendump ")
}

// TestScreenText reads a real console screenshot through the fake QEMU's
// screendump.
func TestScreenText(t *testing.T) {
	needTesseract(t)
	m, _ := screenMachine(t, consoleFixture)
	ctx := t.Context()
	text, err := m.GetScreenText(ctx)
	if err != nil || !strings.Contains(text, "hello world") {
		t.Fatalf("GetScreenText: got %q, %v; want it to contain \"hello world\"", text, err)
	}
	texts, err := m.GetScreenTextVariants(ctx)
	if err != nil || len(texts) != len(ocr.DefaultVariants) || texts[0] != text {
		t.Fatalf("GetScreenTextVariants: got %q, %v; want %d texts, the first %q", texts, err, len(ocr.DefaultVariants), text)
	}
}

// TestWaitForText: the text appears on the fourth screenshot; the three
// equal blank frames before it are read once.
func TestWaitForText(t *testing.T) {
	needTesseract(t)
	blank := plainScreen(t, 0)
	m, dir := screenMachine(t, blank, blank, blank, consoleFixture)
	if err := m.WaitForText(t.Context(), `hello\s+world`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := screendumps(t, dir); n != 4 {
		t.Errorf("got %d screendumps, want 4: the wait stops at the first frame that matches", n)
	}
}

// TestWaitForTextTimeout: a pattern that never matches times out with
// the last text read and the last screenshot saved; no frame is read
// twice, whether it repeats the one before or an earlier one.
func TestWaitForTextTimeout(t *testing.T) {
	needTesseract(t)
	dark, light := plainScreen(t, 0), plainScreen(t, 200)
	m, dir := screenMachine(t, dark, light, dark)
	// 6 s: long enough for the 6 reads on a quiet host, so that reading a
	// frame again would show as a seventh.
	err := m.WaitForText(t.Context(), "never shown", 6*time.Second)
	var se *machine.ScreenTextError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *ScreenTextError", err)
	}
	// Each of the 2 distinct frames is read at most once per variant: a
	// seventh read would be a frame read again. How many of the 6 fit in
	// the 6 s depends on the host's load (2 s was not enough under CI), so
	// the floor is one frame's reads, not all of them.
	if most, least := 2*len(ocr.DefaultVariants), len(ocr.DefaultVariants); se.Reads > most || se.Reads < least {
		t.Errorf("got %d OCR runs, want %d to %d: each of the 2 distinct frames read at most once per variant", se.Reads, least, most)
	}
	if n := screendumps(t, dir); se.Screenshots < 3 || se.Screenshots > n {
		t.Errorf("got %d screenshots, want 3 or more and no more than the %d screendumps", se.Screenshots, n)
	}
	saved, rerr := os.ReadFile(se.Screenshot)
	want, _ := os.ReadFile(dark)
	if rerr != nil || !bytes.Equal(saved, want) || !strings.HasPrefix(se.Screenshot, dir) {
		t.Errorf("got screenshot %q (%v), want the last frame saved in %s", se.Screenshot, rerr, dir)
	}
	msg := err.Error()
	for _, w := range []string{`fake: wait for screen text "never shown": timed out after 6s`, "--- last screen text ---", "--- last screenshot ---\n" + se.Screenshot} {
		if !strings.Contains(msg, w) {
			t.Errorf("got error\n%s\nwant it to contain %q", msg, w)
		}
	}
}

// TestScreenTextRefusals: no display, a bad pattern or no tesseract is
// refused before the machine boots or a screenshot is taken.
func TestScreenTextRefusals(t *testing.T) {
	ctx := t.Context()
	plain := fakeMachine(t, "serve")
	calls := []struct {
		name string
		call func(m *machine.Machine) error
	}{
		{"GetScreenText", func(m *machine.Machine) error { _, err := m.GetScreenText(ctx); return err }},
		{"GetScreenTextVariants", func(m *machine.Machine) error { _, err := m.GetScreenTextVariants(ctx); return err }},
		{"WaitForText", func(m *machine.Machine) error { return m.WaitForText(ctx, "x", time.Second) }},
	}
	for _, c := range calls {
		if err := c.call(plain); !errors.Is(err, machine.ErrNoDisplay) {
			t.Errorf("%s without a display: got %v, want ErrNoDisplay", c.name, err)
		}
	}
	screen, _ := screenMachine(t, consoleFixture)
	if err := screen.WaitForText(ctx, "a(", time.Second); err == nil || !strings.Contains(err.Error(), "missing closing )") {
		t.Errorf("WaitForText of a bad pattern: got %v, want the regexp's error", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath(ocr.Command); err == nil {
		t.Fatal("tesseract still found with an empty PATH")
	}
	for _, c := range calls {
		if err := c.call(screen); !errors.Is(err, ocr.ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install tesseract-ocr") {
			t.Errorf("%s without tesseract: got %v, want ErrNotInstalled naming the package", c.name, err)
		}
	}
	for name, m := range map[string]*machine.Machine{"plain": plain, "screen": screen} {
		if !m.NeedsBoot() {
			t.Errorf("machine %s booted for a refused call", name)
		}
	}
}
