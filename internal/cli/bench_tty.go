package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
)

// ttyBench is the TTY text section of `vmlab bench`: what get_tty_text
// costs.
type ttyBench struct {
	// TTYTextMS is the median round trip of Machine.GetTTYText: the agent
	// reads /dev/vcsa1 and /dev/vcsu1 and sends the text back.
	TTYTextMS float64 `json:"tty_text_ms"`
}

// ttyTextReads is how many reads the figure is the median of.
const ttyTextReads = 50

// benchTTY reads tty1 of m ttyTextReads times.
func (b *ttyBench) benchTTY(ctx context.Context, e *env, m *machine.Machine) error {
	fmt.Fprintf(e.stderr, "vmlab: bench: %d reads of tty1's text\n", ttyTextReads)
	var took []time.Duration
	for range ttyTextReads {
		start := time.Now()
		if _, err := m.GetTTYText(ctx, 1); err != nil {
			return err
		}
		took = append(took, time.Since(start))
	}
	b.TTYTextMS = ms(median(took))
	return nil
}

func (b *ttyBench) print(tw io.Writer) {
	fmt.Fprintf(tw, "get_tty_text round trip (tty1, no OCR), median\t%.2f ms\t<= 50 ms\t%s\n", b.TTYTextMS, verdict(b.TTYTextMS <= 50))
}
