package ocr

import (
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/draw"
	"regexp"
)

// A Matcher looks for a regular expression in the text of a sequence of
// screenshots, for wait_for_text: the caller takes a screenshot, hands it
// to Try, and takes the next one when Try reports no match. OCR is the
// costly step (0.3-0.7 s a variant, a screendump about 10 ms), so a frame
// whose pixels were already read is not read again, whether it is the last
// one (a screen that did not change) or an earlier one (a blinking cursor);
// and the variants of a new frame are read in order, stopping at the first
// whose text matches.
//
// A Matcher is not safe for concurrent use.
type Matcher struct {
	re       *regexp.Regexp
	variants []Variant
	seen     map[[sha256.Size]byte]bool
	lastText string
	frames   int
	reads    int
}

// NewMatcher returns a Matcher for re trying DefaultVariants.
func NewMatcher(re *regexp.Regexp) *Matcher {
	return &Matcher{re: re, variants: DefaultVariants, seen: map[[sha256.Size]byte]bool{}}
}

// Try reads img unless a frame with the same pixels was read before, and
// reports whether one of its variants' text matches. An error is tesseract
// failing (or missing, ErrNotInstalled) or ctx ending.
func (m *Matcher) Try(ctx context.Context, img image.Image) (bool, error) {
	m.frames++
	sum := digest(img)
	if m.seen[sum] {
		return false, nil
	}
	for _, v := range m.variants {
		text, err := run(ctx, v.Prepare(img))
		if err != nil {
			return false, fmt.Errorf("reading screen text (variant %s): %w", v.Name, err)
		}
		m.reads++
		m.lastText = text
		if m.re.MatchString(text) {
			return true, nil
		}
	}
	// Only a frame read in full is remembered: one cut short by ctx is read
	// again if it comes back.
	m.seen[sum] = true
	return false, nil
}

// Text returns the text of the last variant read: the matching one after
// Try reports a match, else what a timeout error shows.
func (m *Matcher) Text() string { return m.lastText }

// Frames returns how many frames Try was given.
func (m *Matcher) Frames() int { return m.frames }

// Reads returns how many times tesseract ran.
func (m *Matcher) Reads() int { return m.reads }

// Err returns the error for a wait that ended without a match: the
// pattern, how many frames were seen and read, and the last text.
func (m *Matcher) Err() *NoMatchError {
	return &NoMatchError{Pattern: m.re.String(), Text: m.lastText, Frames: m.frames, Reads: m.reads}
}

// NoMatchError is the error of a wait for screen text that never matched.
// The caller adds the timeout and the last screenshot's path.
type NoMatchError struct {
	Pattern string // the regular expression waited for
	Text    string // the text last read ("" when no frame was read)
	Frames  int    // screenshots given to the Matcher
	Reads   int    // tesseract runs
}

func (e *NoMatchError) Error() string {
	if e.Reads == 0 {
		return fmt.Sprintf("no screen text matched %q: no screenshot was read", e.Pattern)
	}
	return fmt.Sprintf("no screen text matched %q (%d screenshots, %d OCR runs); the last text read:\n%s",
		e.Pattern, e.Frames, e.Reads, e.Text)
}

// digest returns a hash of img's size and pixels, in RGBA so that two
// frames equal in colour hash the same whatever their Go image type.
func digest(img image.Image) [sha256.Size]byte {
	b := img.Bounds()
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(b)
		draw.Draw(rgba, b, img, b.Min, draw.Src)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%dx%d\n", b.Dx(), b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		off := rgba.PixOffset(b.Min.X, y)
		h.Write(rgba.Pix[off : off+4*b.Dx()])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
