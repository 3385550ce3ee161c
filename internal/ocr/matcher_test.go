package ocr

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeTesseract puts a tesseract on PATH that runs body (sh) after reading
// the PGM header's "W H" into $w and $h, with a line added to the log
// $log for each run; it returns the log's path.
func fakeTesseract(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	script := "#!/bin/sh\nlog=" + log + "\necho run >> \"$log\"\nread magic\nread w h\n" + body + "\n/bin/cat >/dev/null\n"
	if err := os.WriteFile(filepath.Join(dir, Command), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return log
}

func runs(t *testing.T, log string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

func frame(c uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 100, 50))
	img.Set(10, 10, color.RGBA{c, c, c, 255})
	return img
}

func TestMatcherSkipsFramesSeen(t *testing.T) {
	log := fakeTesseract(t, `echo "a frame $w wide"`)
	m := NewMatcher(regexp.MustCompile("never"))
	a := frame(200)
	sameAsA := image.NewNRGBA(a.Rect) // equal pixels in another Go type
	for y := 0; y < 50; y++ {
		for x := 0; x < 100; x++ {
			sameAsA.Set(x, y, a.At(x, y))
		}
	}
	n := len(DefaultVariants)
	steps := []struct {
		name     string
		img      image.Image
		wantRuns int
	}{
		{"first frame", a, n},
		{"same frame", a, n},
		{"same pixels, another type", sameAsA, n},
		{"changed frame", frame(100), 2 * n},
		{"first frame again", a, 2 * n},
	}
	for i, s := range steps {
		ok, err := m.Try(context.Background(), s.img)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ok {
			t.Fatalf("%s: got a match of %q", s.name, "never")
		}
		if got := runs(t, log); got != s.wantRuns || m.Reads() != s.wantRuns {
			t.Errorf("%s: tesseract ran %d times (Reads %d), want %d", s.name, got, m.Reads(), s.wantRuns)
		}
		if m.Frames() != i+1 {
			t.Errorf("%s: Frames() = %d, want %d", s.name, m.Frames(), i+1)
		}
	}
}

// TestMatcherStopsAtFirstMatch: the fake prints how many times it has
// run; a pattern that only the second read's text matches must stop the
// reads there.
func TestMatcherStopsAtFirstMatch(t *testing.T) {
	log := fakeTesseract(t, `echo "read $(/usr/bin/wc -l < "$log")"`)
	m := NewMatcher(regexp.MustCompile(`^read 2$`))
	ok, err := m.Try(context.Background(), frame(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no match; last text %q", m.Text())
	}
	if got := runs(t, log); got != 2 || m.Reads() != 2 {
		t.Errorf("tesseract ran %d times (Reads %d), want 2: stop at the second variant", got, m.Reads())
	}
	if m.Text() != "read 2" {
		t.Errorf("Text() = %q, want the matching text %q", m.Text(), "read 2")
	}
}

func TestMatcherTimeoutText(t *testing.T) {
	fakeTesseract(t, `echo "login:"; echo "  "; printf '\f'`)
	m := NewMatcher(regexp.MustCompile(`\$ $`))
	if err := m.Err().Error(); !strings.Contains(err, "no screenshot was read") {
		t.Errorf("error before any frame: %q", err)
	}
	for _, c := range []uint8{1, 2} {
		if _, err := m.Try(context.Background(), frame(c)); err != nil {
			t.Fatal(err)
		}
	}
	err := m.Err()
	if err.Text != "login:" {
		t.Errorf("last text %q, want %q (blank lines and form feed dropped)", err.Text, "login:")
	}
	msg := err.Error()
	for _, want := range []string{`"\\$ $"`, "2 screenshots", fmt.Sprintf("%d OCR runs", 2*len(DefaultVariants)), "the last text read:\nlogin:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}
