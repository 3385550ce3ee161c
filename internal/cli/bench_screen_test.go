package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestBenchScreenKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{screenBench: screenBench{ScreenshotMS: 35.5, DisplayBootS: 3.5}})
	if err != nil || !strings.Contains(string(b), `"screenshot_ms":35.5`) || !strings.Contains(string(b), `"display_boot_s":3.5`) {
		t.Errorf("got %s, %v; want screenshot_ms and display_boot_s in it", b, err)
	}
}

// TestBenchScreenVM measures screenshots of a real display (one boot).
func TestBenchScreenVM(t *testing.T) {
	boot := vmtest.Boot(t)
	var s screenBench
	var stderr bytes.Buffer
	if err := s.benchScreen(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, bootFlags{memory: 512, cpus: 1}); err != nil {
		t.Fatalf("bench screen: %v", err)
	}
	if s.ScreenshotMS <= 0 || s.DisplayBootS <= 0 {
		t.Errorf("got screenshot_ms %v, display_boot_s %v; want both measured", s.ScreenshotMS, s.DisplayBootS)
	}
	t.Logf("screenshot_ms %.2f, display_boot_s %.2f", s.ScreenshotMS, s.DisplayBootS)
}
