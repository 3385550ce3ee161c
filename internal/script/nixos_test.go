package script

import (
	"slices"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
)

// TestMachineLogAndNested: machine.log is a log line under the machine's
// name; machine.nested runs its function as a named step, whose lines are
// under the step's path.
func TestMachineLogAndNested(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	ev, _, err := runNoLab(t.Context(), f, "test_log")
	if err != nil {
		t.Fatal(err)
	}
	logs := ev.find(report.Log)
	if len(logs) != 2 || logs[0].Machine != "a" || logs[0].Text != "from a" ||
		logs[1].Machine != "b" || logs[1].Text != "inside" || !slices.Equal(logs[1].Path, []string{"step"}) {
		t.Errorf("got logs %+v, want a's line, then b's inside step", logs)
	}
	ends := ev.find(report.SubtestEnd)
	if len(ends) != 1 || !slices.Equal(ends[0].Path, []string{"step"}) || !ends[0].Passed {
		t.Errorf("got subtest ends %+v, want step, passed", ends)
	}
}

// TestVLANs: vlans holds every VLAN the machines are on, once, sorted (a
// machine without vlans= is on VLAN 1).
func TestVLANs(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	if _, _, err := runNoLab(t.Context(), f, "test_vlans"); err != nil {
		t.Error(err)
	}
}

// TestSerialStdout: after serial_stdout_off() the machines' console lines
// are marked Quiet (the terminal does not show them); serial_stdout_on()
// ends that.
func TestSerialStdout(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	for test, want := range map[string]bool{"test_log": false, "test_serial_off": true, "test_serial_off_on": false} {
		_, r, err := runNoLab(t.Context(), f, test)
		if err != nil {
			t.Fatal(err)
		}
		ev := &events{}
		q := report.NewQueue(ev.Emit, 1)
		consoleEvents(q, test, "a", &r.quietConsole)(machine.Line{Text: "a line"})
		q.Close()
		if got := ev.find(report.Console); len(got) != 1 || got[0].Quiet != want {
			t.Errorf("%s: got console events %+v, want one with Quiet %v", test, got, want)
		}
	}
}
