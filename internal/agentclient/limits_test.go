package agentclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agent"
	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestRequestTooLarge sends requests that do not fit in one frame: each
// fails alone with ErrTooLarge, naming the limit and what to do instead,
// and the channel keeps serving (before, the write error closed it and the
// machine was taken down).
func TestRequestTooLarge(t *testing.T) {
	c := newPair(t)
	ctx := context.Background()
	long := strings.Repeat("x", agentproto.MaxPayload+1)
	tests := []struct {
		name string
		call func() error
	}{
		{"command", func() error {
			_, err := c.Exec(ctx, agentproto.Exec{Command: "echo " + long}, agentclient.ExecIO{})
			return err
		}},
		{"environment", func() error {
			_, err := c.Exec(ctx, agentproto.Exec{Command: "true", Env: []string{"BIG=" + long}}, agentclient.ExecIO{})
			return err
		}},
		{"wait command", func() error {
			_, err := c.Wait(ctx, agentproto.Wait{Kind: agentproto.WaitCommandOK, Command: long, Timeout: time.Second})
			return err
		}},
		{"services", func() error {
			return c.Services(ctx, []agentproto.Service{{Name: "big", Command: long}})
		}},
		{"command just over the limit once quoted", func() error {
			// 600 KiB of quotes become 1.2 MiB of JSON escapes.
			_, err := c.Exec(ctx, agentproto.Exec{Command: strings.Repeat(`"`, 600<<10)}, agentclient.ExecIO{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, agentclient.ErrTooLarge) {
				t.Fatalf("got %v, want an error wrapping ErrTooLarge", err)
			}
			for _, want := range []string{"1048576 bytes", "copy_from_host"} {
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
