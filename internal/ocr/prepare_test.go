package ocr

import (
	"image"
	"image/color"
	"testing"
)

// screen returns a w x h image of colour bg with a fg rectangle r: a
// stand-in for text on a console.
func screen(w, h int, bg, fg color.Color, r image.Rectangle) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := bg
			if (image.Point{x, y}).In(r) {
				c = fg
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func TestContent(t *testing.T) {
	text := image.Rect(10, 4, 30, 9)
	for _, tc := range []struct {
		name   string
		bg, fg color.Color
	}{
		{"light on dark", color.Black, color.White},
		{"dark on light", color.White, color.Black},
		{"grey on blue", color.RGBA{0, 0, 170, 255}, color.RGBA{170, 170, 170, 255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := content(screen(64, 32, tc.bg, tc.fg, text))
			if got := g.Rect; got != image.Rect(0, 0, text.Dx(), text.Dy()) {
				t.Fatalf("cut to %v, want the text's %dx%d", got, text.Dx(), text.Dy())
			}
			// All text: it must be the darker side after normalisation.
			if v := g.GrayAt(0, 0).Y; v >= 128 {
				t.Errorf("text reads %d, want dark (< 128)", v)
			}
		})
	}
}

// TestContentWindow: a light window with dark text on a dark screen (an
// xterm on X's black root, smaller than half the screen) stays dark on
// light; deciding by the whole screen's brightness inverted it.
func TestContentWindow(t *testing.T) {
	img := screen(64, 32, color.Black, color.White, image.Rect(10, 4, 40, 20))
	for y := 8; y < 12; y++ {
		for x := 15; x < 25; x++ {
			img.Set(x, y, color.Black)
		}
	}
	g := content(img)
	if got := g.Rect; got != image.Rect(0, 0, 30, 16) {
		t.Fatalf("cut to %v, want the window's 30x16", got)
	}
	if v := g.GrayAt(0, 0).Y; v < 128 {
		t.Errorf("the window's background reads %d, want light (>= 128)", v)
	}
	if v := g.GrayAt(5, 4).Y; v >= 128 {
		t.Errorf("the window's text reads %d, want dark (< 128)", v)
	}
}

func TestContentBlank(t *testing.T) {
	g := content(screen(16, 8, color.Black, color.Black, image.Rectangle{}))
	if g.Rect.Dx() != 16 || g.Rect.Dy() != 8 {
		t.Errorf("blank screen cut to %v, want it whole", g.Rect)
	}
}

func TestVariantSizes(t *testing.T) {
	img := screen(64, 32, color.Black, color.White, image.Rect(10, 4, 30, 9))
	want := map[string]image.Point{
		"upscaled": {2*20 + 64, 2*5 + 64},
		"normal":   {20 + 32, 5 + 32},
		"smoothed": {2*20 + 64, 2*5 + 64},
	}
	for _, v := range DefaultVariants {
		g := v.Prepare(img)
		if got := g.Rect.Size(); got != want[v.Name] {
			t.Errorf("variant %s: size %v, want %v", v.Name, got, want[v.Name])
		}
		if g.GrayAt(0, 0).Y != 255 {
			t.Errorf("variant %s: margin %d, want white", v.Name, g.GrayAt(0, 0).Y)
		}
	}
}
