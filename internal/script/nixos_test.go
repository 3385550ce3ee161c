package script

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
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
		consoleEvents(q, r, "a")(machine.Line{Text: "a line"})
		q.Close()
		if got := ev.find(report.Console); len(got) != 1 || got[0].Quiet != want {
			t.Errorf("%s: got console events %+v, want one with Quiet %v", test, got, want)
		}
	}
}

// TestRetryTimeoutSeconds: retry takes NixOS's timeout_seconds= (Load
// refused it before), calls fn(True) last and gives up after it.
func TestRetryTimeoutSeconds(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	if _, _, err := runNoLab(t.Context(), f, "test_retry_timeout_seconds"); err != nil {
		t.Error(err)
	}
	_, _, err := runNoLab(t.Context(), f, "test_retry_gives_up")
	if msg, _ := splitError(err); msg != "retry: lambda did not return True within 100ms" {
		t.Errorf("got %q, want retry to give up after timeout_seconds", msg)
	}
}

// TestNixOSMethodsVM: the methods that need a guest, in one boot (see
// testdata/nixos_vm.star): execute(check_return = False) says -1 (it said
// None), wait_for_unit takes a timeout, wait_for_open_unix_socket waits for
// a datagram socket, get_console_log holds a service's line, and
// copy_from_machine copies as copy_from_vm does.
func TestNixOSMethodsVM(t *testing.T) {
	f := loadTestdata(t, "nixos_vm.star")
	boot := vmtest.Boot(t)
	out := t.TempDir()
	ev := &events{}
	if err := f.Run(t.Context(), "test", boot, out, ev); err != nil {
		t.Fatalf("got %v, want the test to pass", err)
	}
	got, err := os.ReadFile(filepath.Join(out, "files", "sub", "c.txt"))
	if err != nil || string(got) != "copied\n" {
		t.Errorf("copy_from_machine: got %q, %v, want \"copied\\n\"", got, err)
	}
}

// TestAssertions: assert_eq and friends pass quietly, and fail the test
// saying what differed and the script's message.
func TestAssertions(t *testing.T) {
	f := loadTestdata(t, "nixos_names.star")
	tests := []struct{ test, want string }{
		{"test_asserts_pass", ""},
		{"test_assert_eq_fails", "80 != 8080: the port"},
		{"test_assert_in_fails", `"d" not in ["a", "b"]`},
		{"test_assert_true_fails", "0 is not true"},
	}
	for _, tt := range tests {
		_, _, err := runNoLab(t.Context(), f, tt.test)
		msg := ""
		if err != nil {
			msg, _ = splitError(err)
		}
		if msg != tt.want {
			t.Errorf("%s: got %q, want %q", tt.test, msg, tt.want)
		}
	}
}
