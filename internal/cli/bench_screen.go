package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
)

// screenBench is the display's section of `vmlab bench`.
type screenBench struct {
	// DisplayBootS is Start to the first Succeed("true") of a machine
	// with a display (its DRM driver loads, a shell starts on tty1), one
	// boot: against boot_s, the display's cost.
	DisplayBootS float64 `json:"display_boot_s"`
	// ScreenshotMS is Machine.Screenshot, QMP's screendump to the PNG in
	// the driver's hands, median of screenshotRuns.
	ScreenshotMS float64 `json:"screenshot_ms"`
}

// screenshotRuns is how many screenshots the figure is the median of.
const screenshotRuns = 20

// benchScreen boots a machine with a display and times its screenshots.
func (s *screenBench) benchScreen(ctx context.Context, e *env, boot *machine.Boot, bf bootFlags) error {
	fmt.Fprintf(e.stderr, "vmlab: bench: %d screenshots\n", screenshotRuns)
	m, err := machine.New(machine.Config{Machine: spec.Machine{Name: "bench", MemoryMiB: bf.memory, CPUs: bf.cpus, Display: true}, Boot: boot})
	if err != nil {
		return err
	}
	defer m.Close()
	start := time.Now()
	if _, err := m.Succeed(ctx, "true"); err != nil {
		return err
	}
	s.DisplayBootS = time.Since(start).Seconds()
	var shots []time.Duration
	for range screenshotRuns {
		start := time.Now()
		if _, err := m.Screenshot(ctx); err != nil {
			return err
		}
		shots = append(shots, time.Since(start))
	}
	s.ScreenshotMS = ms(median(shots))
	return nil
}

func (s *screenBench) print(tw io.Writer) {
	fmt.Fprintf(tw, "machine with a display: Start to first Succeed(\"true\")\t%.2f s\t\t\n", s.DisplayBootS)
	fmt.Fprintf(tw, "screenshot (QMP screendump to PNG), median\t%.2f ms\t\t\n", s.ScreenshotMS)
}
