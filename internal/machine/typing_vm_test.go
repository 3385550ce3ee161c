package machine_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// typingLoad is how many busy processes TestVMTypingUnderLoad runs while
// it types: three per core of this 2-core host starve the guest's CPU for
// long enough (TCG) that keys sent one per 10 ms overflowed the PS/2
// keyboard's queue (3 to 9 characters lost of 400 before the guest
// acknowledged keys).
const typingLoad = 6

// TestVMTypingUnderLoad types 400 characters of mixed case, digits and
// symbols into cat on tty1 with send_chars' defaults while the host is
// loaded, and finds exactly that line in the file cat wrote: no key
// lost, none out of order, every shift released in time. A chord and
// a key held down (ctrl-d) ends cat, as typed after the line.
func TestVMTypingUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "typing", Display: true}, Dir: t.TempDir()})
	ctx := t.Context()
	text := mixedText(400)
	for i, load := range []int{0, typingLoad} {
		t.Run(map[int]string{0: "quiet", typingLoad: "loaded"}[load], func(t *testing.T) {
			file := "/tmp/typed" + string(rune('0'+i))
			if err := m.SendChars(ctx, "cat > "+file+"\n", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WaitUntilSucceeds(ctx, "pgrep -x cat", 60*time.Second); err != nil {
				t.Fatal(err)
			}
			stop := busy(t, load)
			start := time.Now()
			err := m.SendChars(ctx, text+"\n", 0)
			took := time.Since(start)
			stop()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("typed %d characters in %v with %d busy processes", len(text)+1, took.Round(time.Millisecond), load)
			// The line is in the file once its newline arrived; if that
			// was lost, another one ends the line.
			if _, err := m.WaitUntilSucceeds(ctx, "test -s "+file, 30*time.Second); err != nil {
				if err := m.SendChars(ctx, "\n", 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := m.WaitUntilSucceeds(ctx, "test -s "+file, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			got, err := m.Succeed(ctx, "cat "+file)
			if err != nil {
				t.Fatal(err)
			}
			if got != text+"\n" {
				line, _, _ := strings.Cut(got, "\n")
				t.Errorf("%d of %d characters lost or wrong with %d busy processes: got\n%q\nwant\n%q", len(text)-common(line, text), len(text), load, got, text+"\n")
			}
			if err := m.SendKey(ctx, "ctrl-d", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WaitUntilSucceeds(ctx, "! pgrep -x cat", 30*time.Second); err != nil {
				t.Fatalf("cat did not end at ctrl-d: %v", err)
			}
		})
	}
}

// mixedText returns n characters cycling through lower and upper case,
// digits and the shifted and unshifted symbols of a US keyboard, without
// repeating a character twice in a row.
func mixedText(n int) string {
	const alphabet = "abcXYZ019 -_=+!@#$%^&*()[]{};:'\",.<>/?|~`DEFghiJKL\\"
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteByte(alphabet[(i*7+i/len(alphabet))%len(alphabet)])
	}
	return b.String()
}

// common returns the length of the longest common subsequence of a and b:
// how many of want's characters arrived, in order.
func common(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
			} else {
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// busy starts n processes that spin on the host's CPUs (yes into
// /dev/null) and returns a function that stops them; the test's end
// stops them too.
func busy(t *testing.T, n int) (stop func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	stop = func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
		procs = nil
		null.Close()
	}
	t.Cleanup(stop)
	for range n {
		c := exec.Command("yes")
		c.Stdout = null
		if err := c.Start(); err != nil {
			t.Fatalf("start a busy process: %v", err)
		}
		procs = append(procs, c)
	}
	return stop
}
