package machine

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmlab/vmlab/internal/ocr"
)

// The text on a machine's display, read by OCR (package ocr,
// docs/screens.md#ocr): each method checks that the machine has a display
// and that tesseract is installed before it takes a screenshot, so a
// mistake costs no boot and no screendump.

// screenPoll is how long WaitForText waits before the next screenshot
// after one that showed nothing new. A screendump of the console
// costs ~35 ms of QEMU's main loop under TCG (bench screenshot_ms), and
// OCR of a new frame ~0.5 s: polling every 100 ms adds at most that to the
// latency of a read while keeping QEMU's main loop free three quarters of
// the time.
const screenPoll = 100 * time.Millisecond

// screenSeq numbers the screenshots WaitForText saves on a timeout.
var screenSeq atomic.Int64

// ScreenTextError says WaitForText timed out: no screenshot's text matched.
type ScreenTextError struct {
	Machine     string
	Pattern     string
	Timeout     time.Duration
	Screenshots int    // screenshots taken
	Reads       int    // OCR runs (a frame already read is not read again)
	Text        string // the text last read; "" when no frame was read
	// Screenshot is the file of the last screenshot, in the machine's
	// directory (under the test's output); "" when none was taken or it
	// could not be saved.
	Screenshot string
	// Services says which declared services exited since boot, and how
	// (TimeoutError.Services).
	Services string
}

func (e *ScreenTextError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: wait for screen text %q: timed out after %v (%d screenshots, %d OCR runs)",
		e.Machine, e.Pattern, e.Timeout, e.Screenshots, e.Reads)
	section(&b, "services that exited", e.Services)
	text := e.Text
	if e.Reads == 0 {
		text = "(no screenshot was read)"
	}
	section(&b, "last screen text", text)
	section(&b, "last screenshot", e.Screenshot)
	return b.String()
}

// readyForOCR refuses an OCR method on a machine without a display, or
// when tesseract is missing.
func (m *Machine) readyForOCR(what string) error {
	if !m.cfg.Display {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, ErrNoDisplay)
	}
	if err := ocr.Available(); err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return nil
}

// ScreenImage takes a screenshot (Screenshot) and returns it decoded, with
// the PNG it was decoded from, without saving it anywhere.
func (m *Machine) ScreenImage(ctx context.Context) (image.Image, []byte, error) {
	b, err := m.Screenshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	img, err := decodeScreen(m.cfg.Name, b)
	return img, b, err
}

func decodeScreen(name string, b []byte) (image.Image, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: decode the screenshot: %w", name, err)
	}
	return img, nil
}

// GetScreenText returns the text OCR reads on a screenshot of the
// machine's display, with the first of ocr.DefaultVariants.
func (m *Machine) GetScreenText(ctx context.Context) (string, error) {
	const what = "read the screen's text"
	if err := m.readyForOCR(what); err != nil {
		return "", err
	}
	img, _, err := m.ScreenImage(ctx)
	if err != nil {
		return "", err
	}
	text, err := ocr.Recognize(ctx, img)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return text, nil
}

// GetScreenTextVariants returns the texts OCR reads on one screenshot of
// the machine's display, one per variant of ocr.DefaultVariants, in order.
func (m *Machine) GetScreenTextVariants(ctx context.Context) ([]string, error) {
	const what = "read the screen's text variants"
	if err := m.readyForOCR(what); err != nil {
		return nil, err
	}
	img, _, err := m.ScreenImage(ctx)
	if err != nil {
		return nil, err
	}
	texts, err := ocr.Variants(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	return texts, nil
}

// WaitForText waits until the text OCR reads on the machine's display
// matches pattern (Go's regexp syntax), for up to timeout (0: the
// default). It takes screenshots one after another, reads only a frame
// whose pixels it has not read before, stops at the first variant whose
// text matches, and after a frame that showed nothing new waits
// screenPoll before the next. On a timeout it saves the last screenshot
// in the machine's directory and returns a *ScreenTextError naming it.
func (m *Machine) WaitForText(ctx context.Context, pattern string, timeout time.Duration) error {
	what := fmt.Sprintf("wait for screen text %q", pattern)
	re, err := regexp.Compile(pattern)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	if err := m.readyForOCR(what); err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = m.DefaultTimeout()
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	matcher := ocr.NewMatcher(re)
	last, shots, err := m.waitForText(waitCtx, matcher)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return m.stoppedError(ctx, what, "")
	case waitCtx.Err() == nil:
		return fmt.Errorf("%s: %s: %w", m.cfg.Name, what, err)
	}
	nm := matcher.Err()
	return &ScreenTextError{Machine: m.cfg.Name, Pattern: pattern, Timeout: timeout,
		Screenshots: shots, Reads: nm.Reads, Text: nm.Text, Screenshot: m.saveScreen(last), Services: m.servicesAtTimeout(ctx)}
}

// waitForText hands screenshots to matcher until one matches or ctx ends,
// and returns the last screenshot's PNG and how many it took. A PNG equal
// to the one before is the same frame (QEMU encodes the same pixels the
// same way): it is neither decoded nor hashed again.
func (m *Machine) waitForText(ctx context.Context, matcher *ocr.Matcher) (last []byte, shots int, err error) {
	for {
		b, err := m.Screenshot(ctx)
		if err != nil {
			return last, shots, err
		}
		shots++
		fresh := !bytes.Equal(b, last)
		last = b
		if fresh {
			img, err := decodeScreen(m.cfg.Name, b)
			if err != nil {
				return last, shots, err
			}
			reads := matcher.Reads()
			ok, err := matcher.Try(ctx, img)
			if ok || err != nil {
				return last, shots, err
			}
			// A frame just read took OCR's time, in which the screen may
			// have changed: look again at once.
			if matcher.Reads() > reads {
				continue
			}
		}
		t := time.NewTimer(screenPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, shots, ctx.Err()
		case <-t.C:
		}
	}
}

// saveScreen writes b, the last screenshot of a wait, into the machine's
// directory and returns its path; "" when there is none or it cannot be
// written (the wait's error matters more than the picture's).
func (m *Machine) saveScreen(b []byte) string {
	if b == nil {
		return ""
	}
	dir := filepath.Join(m.dir, "output")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	path := filepath.Join(dir, fmt.Sprintf("screen-%d.png", screenSeq.Add(1)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return ""
	}
	return path
}
