package machine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vmlab/vmlab/internal/agentproto"
	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestVMSystemdFailedUnit: on a systemd machine a wait that times out
// names the declared units that failed and how (systemd's word, asked at
// the timeout), as fast mode names its exited services.
func TestVMSystemdFailedUnit(t *testing.T) {
	needsSystemd(t)
	ctx := t.Context()
	m := vmtest.Machine(t, machine.Config{Machine: spec.Machine{Name: "sysfail", Init: spec.InitSystemd,
		Services: []agentproto.Service{{Name: "x", Command: "echo bad option; exit 1"}, {Name: "fine", Command: "sleep 600"}}}})
	// wait_for_unit fails at once on the failed unit: the timeout below
	// then finds it failed.
	if err := m.WaitForUnit(ctx, "x", "", 60*time.Second); err == nil {
		t.Fatal("wait_for_unit x: got nil, want its failure")
	}
	err := m.WaitForFile(ctx, "/never", time.Second)
	want := "--- services that exited ---\nunit x.service failed (exit-code): its main process exited with status 1\n"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant an error containing %q", err, want)
	}
	_, section, _ := strings.Cut(err.Error(), want)
	if section, _, _ = strings.Cut(section, "---"); section != "" {
		t.Errorf("the section names more than x.service: %q", section)
	}
}
