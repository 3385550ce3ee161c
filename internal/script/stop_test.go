package script

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestStopEvents: a machine's stops are events, in order with its boots:
// reboot() stops it before it boots again, shutdown() and crash() stop
// it, and a guest that panics is down with the reason. (The end of a test
// stopping what is up is TestProgressOnTerminal's "stopped".)
func TestStopEvents(t *testing.T) {
	src := `
vm = machine()

def test():
    vm.reboot()
    vm.shutdown()
    vm.start()
    vm.crash()
    vm.start()
    vm.succeed("echo c > /proc/sysrq-trigger")
`
	file, err := Load("stop.star", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	boot := vmtest.Boot(t)
	ev := &events{}
	err = file.Run(t.Context(), "test", boot, t.TempDir(), ev)
	if err == nil || !strings.Contains(err.Error(), "machine is down") {
		t.Fatalf("got error %v, want the panic's", err)
	}
	var got []string
	for _, e := range ev.ev {
		switch e.Kind {
		case report.BootStart:
			got = append(got, "boot-start")
		case report.Boot:
			got = append(got, "boot")
		case report.Stop:
			s := "stop"
			if e.Error != "" {
				s = "down: " + e.Error
			}
			got = append(got, s)
		}
	}
	want := []string{
		"boot-start", "boot", "stop", "boot-start", "boot", // reboot()
		"stop",                       // shutdown()
		"boot-start", "boot", "stop", // start(), crash()
		"boot-start", "boot", "down: kernel panic", // start(), a panic; nothing left to stop at the end
	}
	if len(got) != len(want) {
		t.Fatalf("got events %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d is %q, want %q (all: %q)", i, got[i], want[i], got)
		}
	}
	if i := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "down") }); i >= 0 && !strings.Contains(got[i], "qemu exited") {
		t.Errorf("the down event says %q, want QEMU's word too", got[i])
	}
}
