package machine

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTSCArgs checks the TSC frequency a TCG guest is given: the host's,
// measured twice within 0.1% of each other, and none under KVM.
func TestTSCArgs(t *testing.T) {
	if got := tscArgs("kvm"); got != nil {
		t.Errorf("tscArgs(kvm) = %q, want none: kvm-clock needs no calibration", got)
	}
	if !haveTSC {
		if got := tscArgs("tcg"); got != nil {
			t.Errorf("tscArgs(tcg) without a TSC = %q, want none", got)
		}
		return
	}
	args := tscArgs("tcg")
	if len(args) != 1 || !strings.HasPrefix(args[0], "tsc_early_khz=") {
		t.Fatalf("tscArgs(tcg) = %q, want [tsc_early_khz=N]", args)
	}
	khz, err := strconv.ParseInt(strings.TrimPrefix(args[0], "tsc_early_khz="), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	again := measureTSCkHz(20 * time.Millisecond)
	if diff := khz - again; diff*1000 > khz || -diff*1000 > khz {
		t.Errorf("the host's TSC measured %d kHz, then %d kHz: want them within 0.1%%", khz, again)
	}
}
