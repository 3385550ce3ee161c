package agentclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestRequestTooLarge sends requests the guest cannot take: a command or
// environment entry longer than Linux takes in one exec argument, or a
// request over a frame. Each fails alone with ErrTooLarge, naming the
// limit (and what to do instead), and the channel keeps serving (before,
// the write error closed it and the machine was taken down; a command
// over 128 KiB failed in the guest quoting itself whole).
func TestRequestTooLarge(t *testing.T) {
	c := newPair(t)
	ctx := context.Background()
	long := strings.Repeat("x", agentproto.MaxPayload+1)
	// Six entries of 100 KiB of quotes: 600 KiB, but 1.2 MiB as JSON.
	var quotes []string
	for i := range 6 {
		quotes = append(quotes, fmt.Sprintf("Q%d=%s", i, strings.Repeat(`"`, 100<<10)))
	}
	tests := []struct {
		name string
		call func() error
		want []string
	}{
		{"command", func() error {
			_, err := c.Exec(ctx, agentproto.Exec{Command: "echo " + long[:agentproto.MaxArg]}, agentclient.ExecIO{})
			return err
		}, []string{"131071 bytes", "copy_from_host"}},
		{"environment entry", func() error {
			_, err := c.Exec(ctx, agentproto.Exec{Command: "true", Env: []string{"BIG=" + long}}, agentclient.ExecIO{})
			return err
		}, []string{"environment variable BIG", "131071 bytes"}},
		{"environment over a frame once quoted", func() error {
			_, err := c.Exec(ctx, agentproto.Exec{Command: "true", Env: quotes}, agentclient.ExecIO{})
			return err
		}, []string{"1048576 bytes", "copy_from_host"}},
		{"wait command", func() error {
			_, err := c.Wait(ctx, agentproto.Wait{Kind: agentproto.WaitCommandOK, Command: long, Timeout: time.Second})
			return err
		}, []string{"131071 bytes"}},
		{"services", func() error {
			return c.Services(ctx, []agentproto.Service{{Name: "big", Command: long}})
		}, []string{"1048576 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, agentclient.ErrTooLarge) {
				t.Fatalf("got %v, want an error wrapping ErrTooLarge", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if err := c.Err(); err != nil {
				t.Fatalf("the channel ended: %v", err)
			}
			res, stdout, _ := run(t, c, "echo still here")
			if res.Exit != 0 || stdout != "still here\n" {
				t.Errorf("next command: got exit %d, stdout %q; want 0, %q", res.Exit, stdout, "still here\n")
			}
		})
	}
	// Just under the limit runs.
	res, stdout, _ := run(t, c, "echo "+long[:agentproto.MaxArg-len("echo ")])
	if res.Exit != 0 || len(stdout) != agentproto.MaxArg-len("echo ")+1 {
		t.Errorf("a command of %d bytes: got exit %d, %d bytes out", agentproto.MaxArg, res.Exit, len(stdout))
	}
}

// TestWaitOutputTooLarge runs a wait whose command prints more than a
// Result frame can carry: the wait ends with an error naming the limit
// instead of a Result the agent cannot send (the host waited for it until
// its deadline before).
func TestWaitOutputTooLarge(t *testing.T) {
	c := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.Wait(ctx, agentproto.Wait{Kind: agentproto.WaitCommandOK,
		Command: "head -c 2000000 /dev/zero | tr '\\0' x", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("got %v, want a Result", err)
	}
	if !strings.Contains(res.Error, "printed more than") || len(res.Output) > agent.WaitOutputLimit {
		t.Errorf("got error %q and %d bytes of output; want an error naming the limit and at most %d bytes",
			res.Error, len(res.Output), agent.WaitOutputLimit)
	}
	if res, stdout, _ := run(t, c, "echo still here"); res.Exit != 0 || stdout != "still here\n" {
		t.Errorf("next command: got exit %d, stdout %q", res.Exit, stdout)
	}
}

// countingReader is an endless standard input that counts what was taken.
type countingReader struct{ n atomic.Int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n.Add(int64(len(p)))
	return len(p), nil
}

// TestStdinWindow feeds an endless standard input to a command that reads
// none of it for a second: the host sends no more than the window (plus
// the buffers between it and the command), so the guest never holds more.
// Before, the host sent as fast as the channel took it and the guest
// queued it all.
func TestStdinWindow(t *testing.T) {
	c := newPair(t)
	in := &countingReader{}
	res, err := c.Exec(context.Background(), agentproto.Exec{Command: "exec sleep 1", Timeout: 10 * time.Second},
		agentclient.ExecIO{Stdin: in})
	if err != nil || res.Exit != 0 {
		t.Fatalf("got %+v, %v", res, err)
	}
	// The window, the command's pipe (64 KiB), and a copy buffer at each end.
	const most = agentproto.WindowSize + 64<<10 + 2*32<<10 + agentproto.ChunkSize
	if got := in.n.Load(); got > most {
		t.Errorf("the host took %d bytes of stdin, want at most %d", got, most)
	}
	// The stream ended: the sender has stopped, and the channel goes on.
	if res, stdout, _ := run(t, c, "echo still here"); res.Exit != 0 || stdout != "still here\n" {
		t.Errorf("next command: got exit %d, stdout %q", res.Exit, stdout)
	}
}

// TestCopyWindow copies 8 MiB, eight windows, each way.
func TestCopyWindow(t *testing.T) {
	c := newPair(t)
	src := filepath.Join(t.TempDir(), "big")
	data := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	guest := filepath.Join(t.TempDir(), "in")
	if err := c.CopyIn(context.Background(), src, guest); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(t.TempDir(), "back")
	if err := c.CopyOut(context.Background(), guest, back); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(back); err != nil || !bytes.Equal(b, data) {
		t.Errorf("got %d bytes back (%v), want the %d sent", len(b), err, len(data))
	}
}
