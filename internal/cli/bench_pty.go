package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
)

// ptyBench is the terminal section of `vmlab bench`: how long a keystroke
// takes to come back through a guest terminal, what a user of vmlab shell
// or vmlab exec feels as typing lag.
type ptyBench struct {
	// PTYEchoMS is the median time from writing one byte to a shell's
	// input (Machine.Shell on a terminal, running cat) to its echo arriving
	// on the host: the agent channel both ways, the agent and the guest's
	// terminal line discipline, which echoes it.
	PTYEchoMS float64 `json:"pty_echo_ms"`
}

// ptyEchoKeys is how many keystrokes the figure is the median of.
const ptyEchoKeys = 50

// benchPTY types ptyEchoKeys keys into cat on a terminal in m, one at a
// time, each after the echo of the one before.
func (p *ptyBench) benchPTY(ctx context.Context, e *env, m *machine.Machine) error {
	fmt.Fprintf(e.stderr, "vmlab: bench: %d keystrokes through a terminal\n", ptyEchoKeys)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in, typed := io.Pipe()
	defer typed.Close()
	echo := &echoCounter{seen: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := m.Shell(ctx, machine.ShellOptions{Command: []string{"cat"}, TTY: true, Stdin: in, Stdout: echo})
		done <- err
	}()
	var lags []time.Duration
	for i := range ptyEchoKeys {
		start := time.Now()
		if _, err := typed.Write([]byte("x")); err != nil {
			return fmt.Errorf("type into cat on a terminal: %w", err)
		}
		if err := echo.await(i+1, done, 30*time.Second); err != nil {
			return err
		}
		lags = append(lags, time.Since(start))
	}
	// Enter, then the end of input (the terminal's EOF at a line's start):
	// cat prints the line and exits.
	typed.Write([]byte("\n"))
	typed.Close()
	if err := <-done; err != nil {
		return fmt.Errorf("cat on a terminal: %w", err)
	}
	p.PTYEchoMS = ms(median(lags))
	return nil
}

func (p *ptyBench) print(tw io.Writer) {
	fmt.Fprintf(tw, "terminal: keystroke to its echo (cat on a guest pty), median\t%.2f ms\t<= 50 ms\t%s\n", p.PTYEchoMS, verdict(p.PTYEchoMS <= 50))
}

// echoCounter counts the x's a terminal has echoed.
type echoCounter struct {
	n    atomic.Int64
	seen chan struct{} // a write happened
}

func (c *echoCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("x"))))
	select {
	case c.seen <- struct{}{}:
	default:
	}
	return len(p), nil
}

// await waits until n x's have come back.
func (c *echoCounter) await(n int, done <-chan error, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for c.n.Load() < int64(n) {
		select {
		case <-c.seen:
		case err := <-done:
			return fmt.Errorf("cat on a terminal ended before the echo of keystroke %d: %v", n, err)
		case <-t.C:
			return fmt.Errorf("no echo of keystroke %d through the terminal after %v", n, timeout)
		}
	}
	return nil
}
