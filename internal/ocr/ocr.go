// Package ocr reads the text off a machine's screenshot with tesseract from
// the distribution (package tesseract-ocr), run as a process per call: it
// owns the preparation of a screenshot for OCR (the variants), the tesseract
// command line, and the Matcher that waits for a regular expression over a
// stream of screenshots without reading the same frame twice.
//
// Taking screenshots is not its business: callers pass image.Image values
// (a QMP screendump decoded from PNG).
package ocr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Command is the tesseract program run, looked up on PATH at each call so
// that installing it while vmlab runs is enough.
const Command = "tesseract"

// ErrNotInstalled is the error (wrapped) when tesseract is not on PATH.
var ErrNotInstalled = errors.New("tesseract is not installed: install the package tesseract-ocr (apt-get install tesseract-ocr, or run scripts/deps)")

// Available returns ErrNotInstalled when tesseract is not on PATH: a
// caller checks it before taking a screenshot that only OCR would read.
func Available() error {
	if _, err := exec.LookPath(Command); err != nil {
		return ErrNotInstalled
	}
	return nil
}

// args are tesseract's options after the input and output names, measured
// on the console fixtures (docs/screens.md#ocr):
//
//   - --oem 1: the LSTM engine, the only one Debian's eng.traineddata
//     carries (--oem 0 fails to load it).
//   - --psm 6: one uniform block of text, which a console or terminal is.
//     The automatic layout analysis (psm 3) and one-column mode (psm 4)
//     read the same phrases at 2x but 1-2 of 8 at the original size (psm
//     6: 4-5), and are no faster.
//   - --dpi 300: the images carry no resolution; without it tesseract
//     warns on stderr. The value changes nothing read (70, 150 and 300
//     read the same phrases).
//   - tessedit_do_invert=0: every variant is dark on light already, so
//     retrying a line inverted can only read noise (no time difference
//     measured either way).
//   - preserve_interword_spaces=1: keep the columns of ls and ps apart.
var args = []string{
	"--oem", "1", "--psm", "6", "--dpi", "300", "-l", "eng",
	"-c", "tessedit_do_invert=0",
	"-c", "preserve_interword_spaces=1",
}

// Recognize returns the text tesseract reads on img prepared with the first
// of DefaultVariants, the one that reads a console best.
func Recognize(ctx context.Context, img image.Image) (string, error) {
	return run(ctx, DefaultVariants[0].Prepare(img))
}

// Variants returns the text read on img with each of DefaultVariants, in
// their order: what get_screen_text_variants shows when one reading is not
// enough.
func Variants(ctx context.Context, img image.Image) ([]string, error) {
	texts := make([]string, 0, len(DefaultVariants))
	for _, v := range DefaultVariants {
		text, err := run(ctx, v.Prepare(img))
		if err != nil {
			return texts, fmt.Errorf("reading variant %s: %w", v.Name, err)
		}
		texts = append(texts, text)
	}
	return texts, nil
}

// run runs tesseract once on g, handed over stdin as a binary PGM: no
// compression to spend time on (PNG encoding a 2048x1536 frame costs more
// than writing its 3 MB down a pipe), and leptonica reads it from memory.
func run(ctx context.Context, g *image.Gray) (string, error) {
	path, err := exec.LookPath(Command)
	if err != nil {
		return "", fmt.Errorf("running OCR: %w", ErrNotInstalled)
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"stdin", "stdout"}, args...)...)
	// tesseract's OpenMP threads spin for work: on a 2-core host running
	// VMs, two threads make a read of the 1024x768 fixture take 3.2 s
	// against 0.48 s with one, and they take cores from the machines' QEMU.
	cmd.Env = append(os.Environ(), "OMP_THREAD_LIMIT=1")
	cmd.Stdin = bytes.NewReader(pgm(g))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("running %s: %w", path, ctx.Err())
		}
		return "", fmt.Errorf("running %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return clean(stdout.String()), nil
}

// pgm encodes g as a binary PGM (P5).
func pgm(g *image.Gray) []byte {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	var b bytes.Buffer
	b.Grow(w*h + 20)
	b.WriteString("P5\n" + strconv.Itoa(w) + " " + strconv.Itoa(h) + "\n255\n")
	for y := 0; y < h; y++ {
		b.Write(g.Pix[y*g.Stride : y*g.Stride+w])
	}
	return b.Bytes()
}

// clean drops the blank lines tesseract puts between blocks and its
// trailing form feed, and the spaces ending lines.
func clean(s string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, len(s)+1)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\f")
		if line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
