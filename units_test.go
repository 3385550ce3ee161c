package vmlab_test

import (
	"strings"
	"testing"

	"github.com/vmlab/vmlab"
)

// TestUnitsNeedSystemd: on a fast-mode machine each unit method, and
// WaitForUnit of a user's unit, fails t at once, naming the machine and
// saying how to declare a systemd one. Nothing boots (the machine
// package's TestUnitMethodsNeedSystemd checks that), but New prepares
// the kernel and initramfs, as for VM tests.
func TestUnitsNeedSystemd(t *testing.T) {
	bootsVMs(t)
	m := vmlab.New(t).Machine("fast")
	alice := vmlab.UserManager("alice")
	calls := map[string]func(tb testing.TB){
		"Systemctl":        func(tb testing.TB) { m.Systemctl(tb, "list-jobs") },
		"StartJob":         func(tb testing.TB) { m.StartJob(tb, "web", alice) },
		"StopJob":          func(tb testing.TB) { m.StopJob(tb, "web") },
		"GetUnitInfo":      func(tb testing.TB) { m.GetUnitInfo(tb, "web") },
		"GetUnitProperty":  func(tb testing.TB) { m.GetUnitProperty(tb, "web", "ActiveState") },
		"RequireUnitState": func(tb testing.TB) { m.RequireUnitState(tb, "web", "active", alice) },
		"WaitForUnit":      func(tb testing.TB) { m.WaitForUnit(tb, "web", 0, alice) },
	}
	const want = `: the machine's init is not systemd: declare it with init = "systemd" (in Go, the option vmlab.Systemd())`
	for name, call := range calls {
		msgs := failures(t, call)
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "fast: ") || !strings.HasSuffix(msgs[0], want) {
			t.Errorf("%s: got %q, want one failure ending %q", name, msgs, want)
		}
	}
}
