package machine_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/vmlab/vmlab/internal/agentclient"
	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
)

// printed is what `yes 0123456789 | head -c n` prints.
func printed(n int) string {
	return strings.Repeat("0123456789\n", n/11+1)[:n]
}

// TestOutputLimit runs commands that print around the limits (lowered to
// 64 KiB kept and a file past 16 KiB): Execute returns up to the limit,
// fails beyond it with an *OutputError naming the file, and the file holds
// every byte.
func TestOutputLimit(t *testing.T) {
	const limit, spill = 64 << 10, 16 << 10
	machine.SetOutputLimits(t, limit, spill)
	m := fakeMachine(t, "serve")
	tests := []struct {
		name       string
		stdout     int // bytes printed on stdout
		stderr     int
		wantFile   [2]bool // stdout, stderr
		wantStream string  // of the *OutputError; empty: no error
	}{
		{"short", 100, 10, [2]bool{}, ""},
		{"at the spill size", spill, 0, [2]bool{}, ""},
		{"past the spill size", spill + 1, 0, [2]bool{true, false}, ""},
		{"at the limit", limit, 0, [2]bool{true, false}, ""},
		{"over the limit", 3*limit + 5, 0, [2]bool{true, false}, "stdout"},
		{"stderr over the limit", 10, 2 * limit, [2]bool{false, true}, "stderr"},
		{"both over the limit", 2 * limit, 2 * limit, [2]bool{true, true}, "stdout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// yes dies of SIGPIPE when head is done: under pipefail (as
			// commands run, and in NixOS) that would fail the command.
			cmd := fmt.Sprintf("set +o pipefail; yes 0123456789 | head -c %d; yes 0123456789 | head -c %d >&2", tt.stdout, tt.stderr)
			r, err := m.Execute(t.Context(), cmd)
			var oe *machine.OutputError
			switch {
			case tt.wantStream == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantStream != "" && !errors.As(err, &oe):
				t.Fatalf("got error %v, want an *OutputError", err)
			case oe != nil:
				want := []string{"fake: command ", fmt.Sprintf("printed %d bytes on %s", max(tt.stdout, tt.stderr), tt.wantStream),
					"over the 64 KiB that succeed, fail and execute return", "the whole output is in " + oe.File}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if oe.Stream != tt.wantStream {
					t.Errorf("got stream %s, want %s", oe.Stream, tt.wantStream)
				}
			}
			for i, s := range []struct {
				name, got, file string
				n               int
			}{{"stdout", r.Stdout, r.StdoutFile, tt.stdout}, {"stderr", r.Stderr, r.StderrFile, tt.stderr}} {
				if want := printed(min(s.n, limit)); s.got != want {
					t.Errorf("%s: got %d bytes, want the first %d printed", s.name, len(s.got), len(want))
				}
				if (s.file != "") != tt.wantFile[i] {
					t.Fatalf("%s: got file %q, want one: %v", s.name, s.file, tt.wantFile[i])
				}
				if s.file == "" {
					continue
				}
				b, err := os.ReadFile(s.file)
				if err != nil || string(b) != printed(s.n) {
					t.Errorf("%s: file %s has %d bytes (%v), want the %d printed", s.name, s.file, len(b), err, s.n)
				}
			}
		})
	}
	if out, err := m.Succeed(t.Context(), "echo still here"); err != nil || out != "still here\n" {
		t.Errorf("next command: got %q, %v", out, err)
	}
}

// TestOutputStreamed streams an output over the limit to a writer: the
// writer gets every byte, Result keeps the limit's worth, and it is no
// error (vmlab exec streams what a command prints to the terminal).
func TestOutputStreamed(t *testing.T) {
	const limit = 64 << 10
	machine.SetOutputLimits(t, limit, 16<<10)
	m := fakeMachine(t, "serve")
	var streamed strings.Builder
	r, err := m.Execute(t.Context(), "yes 0123456789 | head -c 200000", machine.Stream(&streamed, nil))
	if err != nil || streamed.String() != printed(200000) || r.Stdout != printed(limit) || r.StdoutFile != "" {
		t.Errorf("got %v, %d bytes streamed, %d kept, file %q; want no error, 200000 streamed, %d kept, no file",
			err, streamed.Len(), len(r.Stdout), r.StdoutFile, limit)
	}
}

// TestOutputMemoryBounded prints 300 MiB through a machine (the agent in
// the fake QEMU, the host's side in this process, real limits) and checks
// that this process's peak RSS grew by far less: before the limit, the
// output was kept whole, several times over.
func TestOutputMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("prints 300 MiB")
	}
	const size = 300 << 20
	m := fakeMachine(t, "serve")
	if _, err := m.Succeed(t.Context(), "true"); err != nil {
		t.Fatal(err)
	}
	before := peakRSS(t)
	r, err := m.Execute(t.Context(), fmt.Sprintf("head -c %d /dev/zero", size))
	grew := peakRSS(t) - before
	var oe *machine.OutputError
	if !errors.As(err, &oe) || oe.Size != size {
		t.Fatalf("got %v, want an *OutputError for %d bytes", err, size)
	}
	if fi, err := os.Stat(r.StdoutFile); err != nil || fi.Size() != size {
		t.Errorf("output file %s: got %v, want %d bytes", r.StdoutFile, err, size)
	}
	// What stays: 16 MiB kept, the builder's growth, frames in flight.
	if grew > 100<<20 && !raceEnabled {
		t.Errorf("peak RSS grew by %d MiB while %d MiB passed, want under 100 MiB", grew>>20, size>>20)
	}
	t.Logf("peak RSS grew by %d MiB while %d MiB passed", grew>>20, size>>20)
}

// peakRSS is this process's peak resident set size in bytes.
func peakRSS(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Maxrss << 10
}

// TestCommandTooLarge sends a command over the agent channel's 1 MiB
// request limit: it fails alone, the machine stays up and the next command
// works (before, the channel broke and the machine went down after 5 s).
func TestCommandTooLarge(t *testing.T) {
	m := fakeMachine(t, "serve")
	long := "echo " + strings.Repeat("x", agentproto.MaxPayload)
	_, err := m.Succeed(t.Context(), long)
	if !errors.Is(err, agentclient.ErrTooLarge) {
		t.Fatalf("got %v, want an error wrapping agentclient.ErrTooLarge", err)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("the error is %d bytes long, want the command cut short in it", len(err.Error()))
	}
	if out, err := m.Succeed(t.Context(), "echo still here"); err != nil || out != "still here\n" {
		t.Errorf("next command: got %q, %v", out, err)
	}
}

// TestLongCommandMessages checks that errors about a long command (under
// the frame limit, so it runs) quote its start, not all of it.
func TestLongCommandMessages(t *testing.T) {
	m := fakeMachine(t, "serve")
	long := "exit 3 # " + strings.Repeat("x", 100<<10)
	_, err := m.Succeed(t.Context(), long)
	var ee *machine.ExitError
	if !errors.As(err, &ee) || ee.Status != 3 {
		t.Fatalf("got %v, want an ExitError with status 3", err)
	}
	if msg := err.Error(); len(msg) > 2000 || !strings.Contains(msg, fmt.Sprintf("... (%d bytes)", len(long))) {
		t.Errorf("got a %d-byte message %.300q, want the command cut short with its length", len(msg), msg)
	}
}
