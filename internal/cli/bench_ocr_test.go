package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/ocr"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestBenchOCRKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{ocrBench: ocrBench{OCRMS: 480, OCRWaitMS: 900}})
	if err != nil || !strings.Contains(string(b), `"ocr_ms":480`) || !strings.Contains(string(b), `"ocr_wait_ms":900`) {
		t.Errorf("got %s, %v; want ocr_ms and ocr_wait_ms in it", b, err)
	}
}

// TestBenchOCRVM measures OCR of a real console (one boot).
func TestBenchOCRVM(t *testing.T) {
	if ocr.Available() != nil {
		t.Skip("tesseract not installed")
	}
	boot := vmtest.Boot(t)
	var o ocrBench
	var stderr bytes.Buffer
	if err := o.benchOCR(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, bootFlags{memory: 512, cpus: 1}); err != nil {
		t.Fatalf("bench OCR: %v", err)
	}
	if o.OCRMS <= 0 || o.OCRWaitMS <= 0 {
		t.Errorf("got ocr_ms %v, ocr_wait_ms %v; want both measured", o.OCRMS, o.OCRWaitMS)
	}
	t.Logf("ocr_ms %.0f, ocr_wait_ms %.0f", o.OCRMS, o.OCRWaitMS)
}
