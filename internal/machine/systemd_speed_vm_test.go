package machine_test

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestSystemdBootTimes times Start to wait_for_unit("multi-user.target")
// of a systemd guest, VMLAB_SPEED_RUNS times (default 1), with nothing
// declared and with one unit declared, and logs each and the medians.
func TestSystemdBootTimes(t *testing.T) {
	needsSystemd(t)
	runs := 1
	if n, err := strconv.Atoi(os.Getenv("VMLAB_SPEED_RUNS")); err == nil && n > 0 {
		runs = n
	}
	hello := "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"
	for _, tc := range []struct {
		name  string
		units []spec.UnitFile
	}{{"bare", nil}, {"one unit", []spec.UnitFile{{Name: "hello.service", Text: hello}}}} {
		var took []time.Duration
		for i := range runs {
			ctx := t.Context()
			m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "speed", Init: spec.InitSystemd, Units: tc.units}})
			start := time.Now()
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			up := time.Since(start)
			if err := m.WaitForUnit(ctx, "multi-user.target", "", 0); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if len(tc.units) > 0 {
				if out, err := m.Succeed(ctx, "systemctl is-active hello.service"); err != nil || out != "active\n" {
					t.Fatalf("hello.service: %q, %v", out, err)
				}
			}
			t.Logf("%s run %d: up %.2fs, multi-user.target %.2fs (stages %v)", tc.name, i+1, up.Seconds(), d.Seconds(), m.Hello().Stages)
			took = append(took, d)
			m.Close()
		}
		slices.Sort(took)
		t.Logf("%s: median %.2fs over %d runs, %v", tc.name, took[len(took)/2].Seconds(), runs, took)
	}
}
