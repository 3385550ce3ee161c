package report

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScreenshotInReports: a step that saved a screenshot shows it inline
// in report.html (a data: URL, so the page needs nothing beside it) and
// names the file in junit.xml; a PNG that cannot be read is linked only.
func TestScreenshotInReports(t *testing.T) {
	dir := t.TempDir()
	shot := filepath.Join(dir, "test_x", "console.png")
	os.MkdirAll(filepath.Dir(shot), 0o700)
	png := []byte("\\x89PNG not really")
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "test_x", "gone.png")
	evs := []Event{
		{Time: at(0), Kind: TestStart, Test: "test_x"},
		{Time: at(1), Kind: Command, Test: "test_x", Machine: "desk", Command: `screenshot("console")`, File: shot, Duration: 35 * time.Millisecond},
		{Time: at(2), Kind: Command, Test: "test_x", Machine: "desk", Command: `screenshot("gone")`, File: gone, Duration: 35 * time.Millisecond},
		{Time: at(3), Kind: TestEnd, Test: "test_x", Passed: true, Duration: 3 * time.Second},
	}
	html, junit := filepath.Join(dir, "report.html"), filepath.Join(dir, "junit.xml")
	if err := emitAll(NewFiles(HTMLFile(html), JUnitFile(junit)), evs); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(html)
	inline := `<img class="shot" src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"`
	if n := strings.Count(string(page), `<img class="shot"`); n != 1 || !strings.Contains(string(page), inline) {
		t.Errorf("report.html has %d screenshots inline, want 1, the readable one:\n%s", n, page)
	}
	for _, want := range []string{`saved <a href="./test_x/console.png">`, `saved <a href="./test_x/gone.png">`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	x, _ := os.ReadFile(junit)
	if !strings.Contains(string(x), "    saved "+shot) {
		t.Errorf("junit.xml does not name the screenshot saved:\n%s", x)
	}
}
