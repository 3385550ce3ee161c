package script

import (
	"errors"

	"go.starlark.net/starlark"

	"github.com/vmlab/vmlab/internal/machine"
)

// The OCR methods (docs/screens.md#ocr): the text on a machine's display,
// read by tesseract. Like the other screen methods they need a machine
// declared with display = True (checkDisplayCall).

// ocrMethods are the OCR methods, in methodTable.
var ocrMethods = []*method{
	{signature: sig("get_screen_text"), boots: true, display: true, do: func(c *call) (starlark.Value, error) {
		return str(c.mm().GetScreenText(c.r.ctx))
	}},
	{signature: sig("get_screen_text_variants"), boots: true, display: true, do: getScreenTextVariants},
	{signature: sig("wait_for_text", pRegex, pTimeout), boots: true, display: true, do: waitForText},
}

// getScreenTextVariants is get_screen_text_variants(): the texts of one
// screenshot, one per OCR variant, as a list.
func getScreenTextVariants(c *call) (starlark.Value, error) {
	texts, err := c.mm().GetScreenTextVariants(c.r.ctx)
	if err != nil {
		return nil, err
	}
	list := make([]starlark.Value, len(texts))
	for i, t := range texts {
		list[i] = starlark.String(t)
	}
	return starlark.NewList(list), nil
}

// waitForText is wait_for_text(regex, timeout=None). On a timeout the
// step links the last screenshot, which report.html shows inline.
func waitForText(c *call) (starlark.Value, error) {
	err := c.mm().WaitForText(c.r.ctx, c.regex, c.timeout)
	if se := (*machine.ScreenTextError)(nil); errors.As(err, &se) {
		c.file = se.Screenshot
	}
	return none(err)
}
