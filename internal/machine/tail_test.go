package machine

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
)

// TestTailKeepsReasons: a tail shows this boot's reason lines that came
// before its last n lines, then "..." when lines were left out between
// them, then the last n lines; a reason inside the last n is not repeated.
func TestTailKeepsReasons(t *testing.T) {
	const panicLine = "Kernel panic - not syncing: Attempted to kill init!"
	frames := func(n int) []string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprintf("frame %d", i))
		}
		return l
	}
	tests := []struct {
		name  string
		lines []string
		n     int
		want  []string
	}{
		{"no reason", frames(5), 3, []string{"frame 2", "frame 3", "frame 4"}},
		{"reason in the tail", append([]string{"boot", panicLine}, frames(2)...), 3,
			[]string{panicLine, "frame 0", "frame 1"}},
		{"reason just before the tail", append([]string{panicLine}, frames(3)...), 3,
			[]string{panicLine, "frame 0", "frame 1", "frame 2"}},
		{"reason far before the tail", append([]string{panicLine}, frames(50)...), 3,
			[]string{panicLine, "...", "frame 47", "frame 48", "frame 49"}},
		{"oops then panic", append(append([]string{"BUG: unable to handle page fault", "Oops: 0002 [#1] SMP"}, frames(10)...), append([]string{panicLine}, frames(10)...)...), 2,
			[]string{"BUG: unable to handle page fault", "Oops: 0002 [#1] SMP", panicLine, "...", "frame 8", "frame 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole(nil, nil)
			c.Write([]byte(strings.Join(tt.lines, "\n") + "\n"))
			if got := c.Tail(tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTailReasonsBounded: a guest that prints reason lines without end
// (an OOM killer at work) keeps the first maxReasons, and a new boot
// forgets them.
func TestTailReasonsBounded(t *testing.T) {
	c := newConsole(nil, nil)
	for i := range 3 * maxReasons {
		fmt.Fprintf(c, "Out of memory: Killed process %d (stress)\nframe\nframe\n", i)
	}
	tail := c.Tail(1)
	if len(tail) != maxReasons+2 || tail[0] != "Out of memory: Killed process 0 (stress)" || tail[maxReasons] != "..." {
		t.Errorf("got %q, want the first %d OOM lines, ..., the last line", tail, maxReasons)
	}
	if got, want := c.failure(false), `out of memory "Out of memory: Killed process 0 (stress)"`; got != want {
		t.Errorf("got failure %q, want %q", got, want)
	}
	c.newBoot()
	if got := c.Tail(1); !slices.Equal(got, []string{"frame"}) {
		t.Errorf("after a new boot: got %q, want only the last line", got)
	}
	if got := c.failure(true); got != "the CPU reset with no word from the kernel (a triple fault?)" {
		t.Errorf("after a new boot with a silent clean exit: got %q", got)
	}
}

// TestLineReason: the lines handed to OnConsole say which ones explain a
// failure, so a report's own console tail can keep them too.
func TestLineReason(t *testing.T) {
	var got []bool
	c := newConsole(nil, func(l Line) { got = append(got, l.Reason) })
	c.Write([]byte("boot\nKernel panic - not syncing: x\nframe\nOut of memory: Killed process 1\n"))
	if want := []bool{false, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("got reasons %v, want %v", got, want)
	}
}

// TestTailElidesBootParam: a console line that quotes the kernel command
// line (Xorg's banner) shows the boot parameter as "vmlab=…" in an error's
// tail; the console log and get_console_log keep it as written.
func TestTailElidesBootParam(t *testing.T) {
	param := agentproto.BootConfig{Hostname: "gui"}.Param()
	line := "service x: Kernel command line: console=ttyS0 " + param + " panic=-1"
	var log strings.Builder
	c := newConsole(&log, nil)
	c.Write([]byte(line + "\n"))
	want := []string{"service x: Kernel command line: console=ttyS0 vmlab=… panic=-1"}
	if got := c.ShownTail(5); !slices.Equal(got, want) {
		t.Errorf("tail: got %q, want %q", got, want)
	}
	if got := c.Tail(5); !slices.Equal(got, []string{line}) {
		t.Errorf("the raw tail (get_console_log) got %q, want the line as written", got)
	}
	if !strings.Contains(log.String(), param) {
		t.Errorf("the console log lost the parameter: %q", log.String())
	}
}
