package script

import (
	"errors"
	"fmt"
	"slices"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/ocr"
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

// ocrInstalled says whether the host can run OCR (nil) or why not, for
// Load's check of the OCR calls; a var for tests.
var ocrInstalled = ocr.Available

// checkOCRCall is Load's check of an OCR method's call: without tesseract
// on the host it could only fail, after the machines it needs booted and
// the test ran up to it, so the file is refused at the call, naming the
// package. A call Load cannot see (a function's parameter's machine) is
// refused when it runs, before it boots anything (checkOCRRun).
func checkOCRCall(meth *method, dot *syntax.DotExpr) []error {
	if !slices.Contains(ocrMethods, meth) {
		return nil
	}
	if err := ocrInstalled(); err != nil {
		return []error{fmt.Errorf("%s: %s(): %w", dot.Name.NamePos, meth.name, err)}
	}
	return nil
}

// checkOCRRun refuses an OCR method's call when tesseract is missing,
// before the call boots its machine: Load refused the calls it could see
// (checkOCRCall), this is for the others (`def look(m):
// m.get_screen_text()`), which would otherwise pay for a boot only to fail.
func checkOCRRun(meth *method, m *machineValue) error {
	if !slices.Contains(ocrMethods, meth) {
		return nil
	}
	if err := ocrInstalled(); err != nil {
		return fmt.Errorf("%s(): machine %s: %w", meth.name, m.name, err)
	}
	return nil
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
