package script

import (
	"fmt"
	"testing"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/ocr"
)

// TestOCRCallWithoutTesseractAtRunTime: an OCR call Load cannot see (on a
// function's parameter) is refused when it runs on a host without
// tesseract, naming the package, before it boots the machine: the run
// here has no lab, so a boot would fail otherwise.
func TestOCRCallWithoutTesseractAtRunTime(t *testing.T) {
	for name, call := range map[string]string{
		"get_screen_text":          "get_screen_text()",
		"get_screen_text_variants": "get_screen_text_variants()",
		"wait_for_text":            "wait_for_text('login:')",
	} {
		t.Run(name, func(t *testing.T) {
			f, err := Load("testdata/call.star", []byte(screenDecl+"\ndef look(m):\n  m."+call+"\ndef test():\n  look(screen)\n"))
			if err != nil {
				t.Fatalf("Load: got %v, want no error (the call is on a parameter)", err)
			}
			old := ocrInstalled
			t.Cleanup(func() { ocrInstalled = old })
			ocrInstalled = func() error { return ocr.ErrNotInstalled }
			r := &run{ctx: t.Context(), file: f, test: "test", rep: &events{}}
			thread := &starlark.Thread{Name: "test"}
			thread.SetLocal(runKey, r)
			_, err = starlark.Call(thread, f.globals["test"], nil, nil)
			want := fmt.Sprintf("%s(): machine screen: %v", name, ocr.ErrNotInstalled)
			if msg, _ := splitError(err); err == nil || msg != want {
				t.Errorf("got %v, want %q", err, want)
			}
		})
	}
}
