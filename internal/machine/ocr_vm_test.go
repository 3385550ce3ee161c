package machine_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMScreenText types a command on tty1 and waits for its output on the
// screen by OCR, reads it again, and waits for text that never comes. The
// output is upper-case words and digits: the console's 8x16 font has
// look-alikes in lower case (v read as u) that would make the test flaky,
// and the typed line ($((6*7))) is not what the pattern matches.
func TestVMScreenText(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	needTesseract(t)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "screen", Display: true}, Dir: t.TempDir()})
	ctx := t.Context()
	if err := m.SendChars(ctx, "echo OCR $((6*7)) DONE\n", 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.WaitForText(ctx, `OCR 42 DONE`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("wait_for_text after typing took %v", time.Since(start))
	start = time.Now()
	text, err := m.GetScreenText(ctx)
	if err != nil || !strings.Contains(text, "OCR 42 DONE") {
		t.Errorf("GetScreenText: got %q, %v; want it to contain \"OCR 42 DONE\"", text, err)
	}
	t.Logf("get_screen_text took %v", time.Since(start))

	err = m.WaitForText(ctx, `NEVER SHOWN`, 3*time.Second)
	var se *machine.ScreenTextError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *ScreenTextError", err)
	}
	if !strings.Contains(se.Text, "OCR 42 DONE") || !strings.Contains(err.Error(), "--- last screen text ---\n") {
		t.Errorf("got error\n%v\nwant it to show the last text read, with OCR 42 DONE", err)
	}
	if _, serr := os.Stat(se.Screenshot); serr != nil || !strings.Contains(err.Error(), "--- last screenshot ---\n"+se.Screenshot) {
		t.Errorf("got error\n%v\nwant it to name the last screenshot, saved (%v)", err, serr)
	}
	t.Logf("timeout: %d screenshots, %d OCR runs in 3s", se.Screenshots, se.Reads)
}

// TestVMScreenTextSystemd reads text printed on tty1 of a systemd guest:
// the display and OCR do not depend on the init.
func TestVMScreenTextSystemd(t *testing.T) {
	needsSystemd(t)
	needTesseract(t)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysd", Init: spec.InitSystemd, Display: true}, Dir: t.TempDir()})
	ctx := t.Context()
	if _, err := m.Succeed(ctx, "echo OCR 42 DONE > /dev/tty1"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitForText(ctx, `OCR 42 DONE`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}
