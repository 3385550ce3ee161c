package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// Default intervals between checks. Files and ports are cheap to check, so
// they are checked often; a command starts a shell each time, which costs a
// few milliseconds of guest CPU under emulation.
const (
	cheapInterval   = 5 * time.Millisecond
	commandInterval = 50 * time.Millisecond
)

// waitUnit answers a WaitUnit: in a guest whose init is systemd, systemd's
// units (unitwait.go); in fast mode, the agent's own services.
func (s *server) waitUnit(ctx context.Context, w agentproto.Wait) agentproto.Result {
	if unitMode() {
		return waitSystemdUnit(ctx, w)
	}
	return s.services.waitUnit(ctx, w.Path, w.Timeout)
}

// wait checks w's condition until it holds, the timeout passes or ctx ends.
// Waits for units (WaitUnit) are the server's: see waitUnit.
func wait(ctx context.Context, w *agentproto.Wait) agentproto.Result {
	check, interval, err := condition(w)
	if err != nil {
		return agentproto.Result{Error: err.Error()}
	}
	if w.Interval > 0 {
		interval = w.Interval
	}
	if w.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.Timeout)
		defer cancel()
	}
	var res agentproto.Result
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		res.Tries++
		ok, output := check(ctx)
		res.Output = output
		if len(output) > WaitOutputLimit {
			res.Output = output[:WaitOutputLimit]
			res.Error = fmt.Sprintf("the command printed more than %d bytes, the most a wait returns; "+
				"redirect its output to a file in the guest", WaitOutputLimit)
			return res
		}
		if ok {
			return res
		}
		select {
		case <-ctx.Done():
			return ended(ctx, res)
		case <-tick.C:
		}
	}
}

// ended is res for a wait whose ctx ended: timed out at its deadline, or
// canceled.
func ended(ctx context.Context, res agentproto.Result) agentproto.Result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		res.TimedOut = true
	} else {
		res.Canceled = true
	}
	return res
}

type checkFunc func(ctx context.Context) (ok bool, output string)

func condition(w *agentproto.Wait) (checkFunc, time.Duration, error) {
	addr := w.Addr
	if addr == "" {
		addr = "localhost"
	}
	hostPort := net.JoinHostPort(addr, strconv.Itoa(w.Port))
	switch w.Kind {
	case agentproto.WaitFile:
		return func(context.Context) (bool, string) {
			_, err := os.Stat(w.Path)
			return err == nil, ""
		}, cheapInterval, nil
	case agentproto.WaitPortOpen:
		return func(context.Context) (bool, string) {
			return dial("tcp", hostPort) == nil, ""
		}, cheapInterval, nil
	case agentproto.WaitPortClosed:
		return func(context.Context) (bool, string) {
			return errors.Is(dial("tcp", hostPort), syscall.ECONNREFUSED), ""
		}, cheapInterval, nil
	case agentproto.WaitUnixSocket, agentproto.WaitUnixDatagram:
		network := "unix"
		if w.Kind == agentproto.WaitUnixDatagram {
			network = "unixgram" // connect(2) succeeds once a datagram socket is bound there
		}
		return func(context.Context) (bool, string) {
			return dial(network, w.Path) == nil, ""
		}, cheapInterval, nil
	case agentproto.WaitCommandOK, agentproto.WaitCommandFails:
		want := w.Kind == agentproto.WaitCommandOK
		return func(ctx context.Context) (bool, string) {
			ok, out := runCheck(ctx, w)
			return ok == want, out
		}, commandInterval, nil
	}
	return nil, 0, errors.New("bad request: unknown wait kind " + strconv.Quote(string(w.Kind)))
}

func dial(network, addr string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// runCheck runs a wait's command once and returns whether it exited 0 and
// its standard output (its stderr is dropped). It takes the fork server when
// the command may (startCommand). Once the shell has exited, its output is
// read for outputLinger at most: a background process that holds it longer
// makes the check fail, as os/exec's WaitDelay did.
func runCheck(ctx context.Context, w *agentproto.Wait) (bool, string) {
	r, pw, err := outputPipe()
	if err != nil {
		return false, err.Error()
	}
	defer r.Close()
	null, err := devNullW()
	if err != nil {
		pw.Close()
		return false, fmt.Sprintf("open %s: %v", os.DevNull, err)
	}
	pid, wait, err := startCommand(ctx, &agentproto.Exec{Command: w.Command, User: w.User}, nil, pw, null)
	pw.Close()
	if err != nil {
		return false, err.Error()
	}
	out := &limitedBuffer{limit: WaitOutputLimit + 1}
	copied := make(chan struct{})
	go func() {
		io.Copy(out, r)
		close(copied)
	}()
	res := waitProcess(ctx, pid, wait, 0)
	closed := true
	select {
	case <-copied:
	case <-time.After(outputLinger):
		closed = false
		r.Close()
		<-copied
	}
	ok := res.Exit == 0 && res.Signal == "" && res.Error == "" && !res.Canceled && closed
	return ok, out.b.String()
}

// WaitOutputLimit bounds what a wait keeps of its command's output: the
// Result that carries it must fit in one frame (agentproto.MaxPayload, 1
// MiB, with room for JSON escapes that can double it).
const WaitOutputLimit = agentproto.MaxPayload / 4

// limitedBuffer keeps the first limit bytes written to it and drops the
// rest, so the command is never stopped by a full pipe or SIGPIPE.
type limitedBuffer struct {
	b     strings.Builder
	limit int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.limit - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
