package ocr

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fixtures are screendumps of a QEMU std-VGA console (see
// testdata/README.md), with phrases on them that the first variant reads
// exactly. The lines with "vmlab" and "machine1" are left out: the 8-pixel
// font's v and 1 are read as u and l by every variant on one fixture or
// the other.
var fixtures = []struct {
	file  string
	words []string
}{
	{"console-1024x768.png", []string{"Welcome to vmlab OCR fixture", "hello world", "cat /proc/version", "Linux version 6.1.0-57-amd64",
		"The quick brown fox jumps over the lazy dog 0123456789"}},
	{"console-720x400.png", []string{"vmlab login: root", "Welcome to vmlab OCR fixture", "hello world", "cat /proc/version", "Linux 6.1.0-57-amd64"}},
}

func needTesseract(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Command); err != nil {
		t.Skip("tesseract not installed (apt-get install tesseract-ocr, or scripts/deps)")
	}
}

func readPNG(t testing.TB, name string) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	return img
}

func TestRecognizeFixtures(t *testing.T) {
	needTesseract(t)
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			text, err := Recognize(context.Background(), readPNG(t, fx.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range fx.words {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q; got:\n%s", w, text)
				}
			}
		})
	}
}

// TestRecognizeDarkOnLight reads a fixture with its colours inverted, as
// a terminal with a white background shows text: content must make both
// read the same.
func TestRecognizeDarkOnLight(t *testing.T) {
	needTesseract(t)
	img := readPNG(t, fixtures[0].file)
	b := img.Bounds()
	inv := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			inv.SetGray(x, y, color.Gray{255 - color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y})
		}
	}
	ctx := context.Background()
	want, err := Recognize(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Recognize(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("inverted screen read as:\n%s\nwant as the original:\n%s", got, want)
	}
}

func TestVariantsFixture(t *testing.T) {
	needTesseract(t)
	texts, err := Variants(context.Background(), readPNG(t, fixtures[1].file))
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != len(DefaultVariants) {
		t.Fatalf("got %d texts, want %d", len(texts), len(DefaultVariants))
	}
	for i, text := range texts {
		if !strings.Contains(text, "hello world") {
			t.Errorf("variant %s lacks %q; got:\n%s", DefaultVariants[i].Name, "hello world", text)
		}
	}
}

func TestMatcherFixture(t *testing.T) {
	needTesseract(t)
	m := NewMatcher(regexp.MustCompile(`brown fox .* lazy dog`))
	ok, err := m.Try(context.Background(), readPNG(t, fixtures[0].file))
	if err != nil {
		t.Fatal(err)
	}
	if !ok || m.Reads() != 1 {
		t.Errorf("got match %v after %d reads, want a match at the first read; text:\n%s", ok, m.Reads(), m.Text())
	}
}

func TestMissingTesseract(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	_, err := Recognize(context.Background(), img)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("got error %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{"tesseract-ocr", "apt-get install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := NewMatcher(regexp.MustCompile("x")).Try(context.Background(), img); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Matcher.Try: got error %v, want ErrNotInstalled", err)
	}
}

func TestTesseractFailure(t *testing.T) {
	fakeTesseract(t, "echo 'Error: no such language' >&2; exit 1")
	_, err := Recognize(context.Background(), image.NewGray(image.Rect(0, 0, 8, 8)))
	if err == nil || !strings.Contains(err.Error(), "no such language") {
		t.Errorf("got error %v, want tesseract's stderr in it", err)
	}
}
