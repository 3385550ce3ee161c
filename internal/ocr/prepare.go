package ocr

import (
	"image"
	"image/color"
)

// A Variant is one way of preparing a screenshot before tesseract reads it.
// Each turns the screenshot into a greyscale image with dark text on a light
// background: tesseract's LSTM models were trained on that.
type Variant struct {
	// Name names the variant in reports and benchmarks.
	Name string
	// Prepare returns the image tesseract reads; it must not modify its
	// argument.
	Prepare func(image.Image) *image.Gray
}

// DefaultVariants are the variants Variants and the Matcher try, in order,
// chosen on QEMU std-VGA console screenshots (testdata; the figures are in
// docs/screens.md#ocr). All are cut to the text and get a white margin:
// text touching the edge of the image, as a console's first line does, is
// read worse or not at all.
//
//   - "upscaled": scaled 2x, pixels repeated. The console font is 8 or 9 by
//     16 pixels, an x-height of about 7, below what tesseract reads
//     reliably ("vmlab" as "umlab", "machine1" as "nachinel"); at 2x it
//     reads 5 and 6 of the fixtures' 8 phrases, at 3x or 4x fewer and
//     slower. It goes first: the best reading for its cost.
//   - "smoothed": 2x with a 3x3 box blur, rounding the bitmap font's
//     corners: it makes other mistakes than "upscaled", so the two together
//     read 7 of 8 on each fixture; about 1.4x the cost.
//   - "normal": the original size, the cheapest (about 0.65x "upscaled").
//     It adds no phrase on the console fixtures; it is there for larger
//     fonts (an X terminal), where 2x may only add cost: not measured yet,
//     there is no X fixture.
var DefaultVariants = []Variant{
	{Name: "upscaled", Prepare: func(img image.Image) *image.Gray { return pad(upscale2x(content(img)), 32) }},
	{Name: "smoothed", Prepare: func(img image.Image) *image.Gray { return pad(smooth(upscale2x(content(img))), 32) }},
	{Name: "normal", Prepare: func(img image.Image) *image.Gray { return pad(content(img), 16) }},
}

// content returns img in greyscale, cut to the box around what differs
// from its background (a console is mostly empty below its last line, and
// tesseract's time grows with the area it is given: a quarter of a call
// saved on the 1024x768 fixture, 0.65-0.78 s down to 0.47-0.58 s), with
// dark text on a light background: inverted when the text's background is
// dark. That background is the screen's (a text console, a dark terminal),
// or, when what the cut keeps has a background of its own with text on it,
// that one: a light window on X's black root is read as it is, where
// deciding by the whole screen inverted it and tesseract read nothing.
func content(img image.Image) *image.Gray {
	g := grey(img)
	bg := mode(g)
	c := crop(g, bg)
	if inner := mode(c); inner != bg && !uniform(c) {
		bg = inner
	}
	if bg < 128 {
		for i, v := range c.Pix {
			c.Pix[i] = 255 - v
		}
	}
	return c
}

// grey returns img in greyscale, origin at (0, 0).
func grey(img image.Image) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := g.Pix[(y-b.Min.Y)*g.Stride:]
		for x := b.Min.X; x < b.Max.X; x++ {
			row[x-b.Min.X] = color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
		}
	}
	return g
}

// mode returns g's most frequent value (g has its own pixels, as grey and
// crop return).
func mode(g *image.Gray) uint8 {
	var hist [256]int
	for _, v := range g.Pix {
		hist[v]++
	}
	m := 0
	for v, n := range hist {
		if n > hist[m] {
			m = v
		}
	}
	return uint8(m)
}

// uniform says whether g is all one value.
func uniform(g *image.Gray) bool {
	for _, v := range g.Pix {
		if v != g.Pix[0] {
			return false
		}
	}
	return true
}

// crop returns the part of g inside the box around the pixels that differ
// from bg, or g when all are bg. The result has its own pixels, origin at
// (0, 0).
func crop(g *image.Gray, bg uint8) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	minX, minY, maxX, maxY := w, h, -1, -1
	for y := 0; y < h; y++ {
		for x, v := range g.Pix[y*g.Stride : y*g.Stride+w] {
			if v != bg {
				minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
			}
		}
	}
	if maxX < 0 {
		return g
	}
	out := image.NewGray(image.Rect(0, 0, maxX+1-minX, maxY+1-minY))
	for y := minY; y <= maxY; y++ {
		copy(out.Pix[(y-minY)*out.Stride:], g.Pix[y*g.Stride+minX:y*g.Stride+maxX+1])
	}
	return out
}

// upscale2x doubles g in each direction, each pixel repeated: the console's
// bitmap font stays sharp, where smoothing would blur its one-pixel strokes.
func upscale2x(g *image.Gray) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := image.NewGray(image.Rect(0, 0, 2*w, 2*h))
	for y := 0; y < h; y++ {
		src := g.Pix[y*g.Stride : y*g.Stride+w]
		dst := out.Pix[2*y*out.Stride : 2*y*out.Stride+2*w]
		for x, v := range src {
			dst[2*x], dst[2*x+1] = v, v
		}
		copy(out.Pix[(2*y+1)*out.Stride:], dst)
	}
	return out
}

// pad returns g inside a white margin of m pixels.
func pad(g *image.Gray, m int) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := image.NewGray(image.Rect(0, 0, w+2*m, h+2*m))
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	for y := 0; y < h; y++ {
		copy(out.Pix[(y+m)*out.Stride+m:], g.Pix[y*g.Stride:y*g.Stride+w])
	}
	return out
}

// smooth returns g with each pixel the mean of its 3x3 neighbourhood (the
// border row and column kept as they are).
func smooth(g *image.Gray) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	out := image.NewGray(g.Rect)
	copy(out.Pix, g.Pix)
	for y := 1; y < h-1; y++ {
		up, mid, down := g.Pix[(y-1)*g.Stride:], g.Pix[y*g.Stride:], g.Pix[(y+1)*g.Stride:]
		row := out.Pix[y*out.Stride:]
		for x := 1; x < w-1; x++ {
			s := int(up[x-1]) + int(up[x]) + int(up[x+1]) +
				int(mid[x-1]) + int(mid[x]) + int(mid[x+1]) +
				int(down[x-1]) + int(down[x]) + int(down[x+1])
			row[x] = uint8(s / 9)
		}
	}
	return out
}
