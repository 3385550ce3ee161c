package machine

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/kernel"
	"github.com/vmlab/vmlab/internal/spec"
)

// TestQEMUConfigDisplay: a machine with a display gets the VGA, the
// kernel's console on tty0 before ttyS0 (which stays /dev/console) and
// the boot config's display; one without gets none of them.
func TestQEMUConfigDisplay(t *testing.T) {
	boot := &Boot{Kernel: &kernel.Kernel{Vmlinux: "/k"}, FS: "9p"}
	for _, display := range []bool{false, true} {
		m := &Machine{cfg: Config{Machine: spec.Machine{Name: "m", Display: display}, Boot: boot}, dir: t.TempDir()}
		cfg := m.qemuConfig(nil, "", "/i")
		fields := strings.Fields(cfg.Append)
		tty0, ttyS0 := slices.Index(fields, "console=tty0"), slices.Index(fields, "console=ttyS0")
		bc, err := agentproto.ParseBootConfig(cfg.Append)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Display != display || bc.Display != display || (tty0 >= 0) != display || ttyS0 < 0 || tty0 > ttyS0 {
			t.Errorf("display %v: got VGA %v, boot config's display %v, kernel command line %q", display, cfg.Display, bc.Display, cfg.Append)
		}
	}
}
