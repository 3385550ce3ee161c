package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/ocr"
	"github.com/vmlab/vmlab/internal/spec"
)

// ocrBench is the OCR section of `vmlab bench` (docs/screens.md#ocr).
type ocrBench struct {
	// OCRMS is Machine.GetScreenText on the idle console: a fresh
	// screenshot and one OCR read, median of ocrRuns.
	OCRMS float64 `json:"ocr_ms,omitempty"`
	// OCRWaitMS is how long Machine.WaitForText returns after the text it
	// waits for appears on the console, median of ocrRuns: the pacing of
	// its screenshots and the reads under way when the text came.
	OCRWaitMS float64 `json:"ocr_wait_ms,omitempty"`
}

// ocrRuns is how many calls each figure is the median of.
const ocrRuns = 5

// ocrAppearAfter is how long after WaitForText starts the text is
// printed: long enough for the wait to have read the screen without it
// (a read takes 0.5-1 s), as a test's wait does before what it waits for
// happens.
const ocrAppearAfter = "1.5"

// benchOCR boots a machine with a display and times OCR on its console;
// without tesseract it says so and measures nothing.
func (o *ocrBench) benchOCR(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags) error {
	if err := ocr.Available(); err != nil {
		fmt.Fprintf(e.stderr, "vmlab: bench: skipping OCR: %v\n", err)
		return nil
	}
	fmt.Fprintf(e.stderr, "vmlab: bench: %d screen reads, %d waits for screen text\n", ocrRuns, ocrRuns)
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus, Display: true}, Boot: boot})
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Succeed(ctx, "true"); err != nil {
		return err
	}
	var reads, waits []time.Duration
	for range ocrRuns {
		start := time.Now()
		if _, err := m.GetScreenText(ctx); err != nil {
			return err
		}
		reads = append(reads, time.Since(start))
	}
	for i := range ocrRuns {
		d, err := ocrWait(ctx, m, fmt.Sprintf("OCR WAIT %d DONE", i+1))
		if err != nil {
			return err
		}
		waits = append(waits, d)
	}
	o.OCRMS, o.OCRWaitMS = ms(median(reads)), ms(median(waits))
	return nil
}

// ocrWait starts WaitForText for text, has the guest print text on its
// console ocrAppearAfter seconds later, and returns how long the wait
// returned after the printing command did.
func ocrWait(ctx context.Context, m *machine.Machine, text string) (time.Duration, error) {
	printed := make(chan time.Time, 1)
	printErr := make(chan error, 1)
	go func() {
		_, err := m.Succeed(ctx, "sleep "+ocrAppearAfter+"; echo '"+text+"' > /dev/tty1")
		printed <- time.Now()
		printErr <- err
	}()
	err := m.WaitForText(ctx, text, time.Minute)
	done := time.Now()
	at := <-printed
	if err := <-printErr; err != nil {
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	return max(done.Sub(at), 0), nil
}

// ocrTargetMS is issue 12's target for one OCR call.
const ocrTargetMS = 1000

func (o *ocrBench) print(tw io.Writer) {
	if o.OCRMS == 0 {
		return
	}
	fmt.Fprintf(tw, "OCR of the console (get_screen_text), median\t%.0f ms\t<= %d ms\t%s\n", o.OCRMS, ocrTargetMS, verdict(o.OCRMS <= ocrTargetMS))
	fmt.Fprintf(tw, "wait_for_text: text shown to the wait's return, median\t%.0f ms\t\t\n", o.OCRWaitMS)
}
