package vmlab_test

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/vmlab/vmlab"
)

// failedTB is a test that has failed once failed is set: it keeps its
// cleanups for the test to run and records its log lines.
type failedTB struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	cleanups []func()
	logs     []string
}

func (f *failedTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *failedTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *failedTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// TestFailureScreenshot: when a test of the Go API fails, each machine
// with a display that is up is pictured before the lab stops, as
// failure-NAME.png in its output directory ($VMLAB_OUT/<test>), and the
// test's log says where; a machine without a display is not.
func TestFailureScreenshot(t *testing.T) {
	bootsVMs(t)
	out := t.TempDir()
	t.Setenv("VMLAB_OUT", out)
	tb := &failedTB{TB: t}
	lab := vmlab.New(tb)
	desk := lab.Machine("desk", vmlab.Display())
	plain := lab.Machine("plain")
	lab.StartAll(tb)
	desk.Succeed(tb, "true")
	plain.Succeed(tb, "true")
	tb.mu.Lock()
	tb.failed = true
	cleanups := tb.cleanups
	tb.mu.Unlock()
	for _, fn := range slices.Backward(cleanups) {
		fn()
	}
	dir := filepath.Join(out, t.Name())
	shot := filepath.Join(dir, "failure-desk.png")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot of the failed test: %v (logs: %q)", err, tb.logs)
	}
	if img, err := png.Decode(bytes.NewReader(b)); err != nil || img.Bounds().Dx() < 640 {
		t.Errorf("%s: got %v, want a PNG of the display", shot, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "failure-plain.png")); err == nil {
		t.Error("got a screenshot of plain, which has no display")
	}
	if !slices.Contains(tb.logs, "vmlab: desk: screenshot of the failed test: "+shot) {
		t.Errorf("got logs %q, want one naming %s", tb.logs, shot)
	}
}
