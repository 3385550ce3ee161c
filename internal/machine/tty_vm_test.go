package machine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMTTYText reads a virtual terminal of a machine without a display
// (the kernel's dummy console): what a command writes to /dev/tty2 is its
// text, a wait for it returns as soon as it is written, and a wait that
// times out shows the text; and on the same machine, what send_console
// writes reaches a program reading the serial console.
func TestVMTTYText(t *testing.T) {
	checkTTYText(t, vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "vt"}, Dir: t.TempDir()}))
}

// TestVMTTYTextSystemd: the same in a machine whose init is systemd, where
// the agent serves as systemd's unit.
func TestVMTTYTextSystemd(t *testing.T) {
	needsSystemd(t)
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "vtsd", Init: spec.InitSystemd}, Dir: t.TempDir()})
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkTTYText(t, m)
}

func checkTTYText(t *testing.T, m *machine.Machine) {
	ctx := t.Context()

	t.Run("a terminal nothing opened is blank", func(t *testing.T) {
		// The dummy console's 25 rows of 80 blanks, as NixOS's fold of
		// /dev/vcs5 reads them.
		want := strings.Repeat(strings.Repeat(" ", 80)+"\n", 24) + strings.Repeat(" ", 80)
		if got, err := m.GetTTYText(ctx, 5); err != nil || got != want {
			t.Errorf("got %q, %v; want a blank tty 5 (%q)", got, err, want)
		}
	})

	t.Run("a timeout on a blank terminal says it is blank", func(t *testing.T) {
		_, err := m.WaitUntilTTYMatches(ctx, 5, "never there", time.Second)
		want := "--- tty 5's last text ---\n(blank: nothing is written on the terminal)"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	})

	t.Run("written text", func(t *testing.T) {
		if _, err := m.Succeed(ctx, `printf 'hello tty\n\n  h\303\251 indented   \n' > /dev/tty2`); err != nil {
			t.Fatal(err)
		}
		got, err := m.GetTTYText(ctx, 2)
		rows := strings.Split(got, "\n")
		want := []string{"hello tty", "", "  hé indented"}
		if err != nil || len(rows) != 25 {
			t.Fatalf("got %q, %v; want 25 rows", got, err)
		}
		for i, row := range rows {
			w := ""
			if i < len(want) {
				w = want[i]
			}
			if row != w+strings.Repeat(" ", 80-len([]rune(w))) {
				t.Errorf("row %d: got %q, want %q padded to 80 columns", i, row, w)
			}
		}
	})

	t.Run("a prompt's trailing blank matches", func(t *testing.T) {
		// NixOS tests wait for "login: " on a login prompt.
		if _, err := m.Succeed(ctx, `printf 'vm login: ' > /dev/tty4`); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitUntilTTYMatches(ctx, 4, "login: ", 10*time.Second); err != nil {
			t.Error(err)
		}
	})

	t.Run("wait returns when the text is written", func(t *testing.T) {
		type result struct {
			text string
			err  error
			at   time.Time
		}
		done := make(chan result, 1)
		go func() {
			text, err := m.WaitUntilTTYMatches(ctx, 3, `marker-(\d+)`, 30*time.Second)
			done <- result{text, err, time.Now()}
		}()
		// The agent (PID 1, or systemd's unit) holds /dev/vcsa3 open
		// while it waits.
		if _, err := m.WaitUntilSucceeds(ctx, "ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q /dev/vcsa3", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := m.Succeed(ctx, "echo marker-42 > /dev/tty3"); err != nil {
			t.Fatal(err)
		}
		wrote := time.Now()
		r := <-done
		if r.err != nil || !strings.Contains(r.text, "marker-42") {
			t.Fatalf("got %q, %v; want the text with marker-42", r.text, r.err)
		}
		// A wait that polled every second would take ~500 ms on average.
		late := r.at.Sub(wrote)
		t.Logf("the wait returned %v after the writing command did (%v after it started)", late, r.at.Sub(start))
		if late > 200*time.Millisecond {
			t.Errorf("the wait returned %v after the write, want within 200 ms", late)
		}
	})

	t.Run("timeout shows the text", func(t *testing.T) {
		_, err := m.WaitUntilTTYMatches(ctx, 2, "never there", 2*time.Second)
		var te *machine.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "tty 2's last text ---\nhello tty\n") {
			t.Errorf("got %v, want a *TimeoutError showing tty 2's text", err)
		}
	})

	t.Run("send_console reaches a reader of the serial console", func(t *testing.T) {
		// Nothing reads ttyS0 unless a test starts it (no getty in fast
		// mode, the serial getty masked under systemd): a reader in a
		// session of its own, so the command's end does not hang it up,
		// says when it has the port open; what is sent after that is its
		// line.
		if _, err := m.Succeed(ctx, `setsid sh -c 'exec < /dev/ttyS0; touch /tmp/reading; read -r line; echo "$line" > /tmp/line' > /dev/null 2>&1 &`); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitForFile(ctx, "/tmp/reading", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := m.SendConsole(ctx, "hello serial\n"); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitForFile(ctx, "/tmp/line", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, err := m.Succeed(ctx, "cat /tmp/line"); err != nil || got != "hello serial\n" {
			t.Errorf("got %q, %v; want the line sent", got, err)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		// Reading the text by request against running cat in the guest
		// (what the host would decode instead).
		var request, exec []time.Duration
		for range 9 {
			start := time.Now()
			if _, err := m.GetTTYText(ctx, 2); err != nil {
				t.Fatal(err)
			}
			request = append(request, time.Since(start))
			start = time.Now()
			if _, err := m.Succeed(ctx, "cat /dev/vcsa2 /dev/vcsu2 > /dev/null"); err != nil {
				t.Fatal(err)
			}
			exec = append(exec, time.Since(start))
		}
		slices.Sort(request)
		slices.Sort(exec)
		t.Logf("median round trip: request %v, exec of cat %v", request[4], exec[4])
	})
}
