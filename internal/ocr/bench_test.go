package ocr

import (
	"context"
	"regexp"
	"testing"
)

// BenchmarkVariant measures one tesseract read of the 1024x768 console
// fixture per variant, preparation included: the ocr_ms for the
// first variant (go test -run - -bench Variant ./internal/ocr/).
func BenchmarkVariant(b *testing.B) {
	needTesseract(b)
	img := readPNG(b, fixtures[0].file)
	for _, v := range DefaultVariants {
		b.Run(v.Name, func(b *testing.B) {
			for b.Loop() {
				if _, err := run(context.Background(), v.Prepare(img)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatcherSeenFrame measures what a frame costs the Matcher when
// the screen did not change: the pixel hash, no OCR.
func BenchmarkMatcherSeenFrame(b *testing.B) {
	needTesseract(b)
	img := readPNG(b, fixtures[0].file)
	m := NewMatcher(regexpNever)
	if _, err := m.Try(context.Background(), img); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.Try(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	}
	if m.Reads() != len(DefaultVariants) {
		b.Fatalf("tesseract ran %d times, want %d", m.Reads(), len(DefaultVariants))
	}
}

var regexpNever = regexp.MustCompile(`\A\z never`)
