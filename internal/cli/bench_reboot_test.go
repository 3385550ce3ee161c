package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchRebootJSON: the reboot figures are in `vmlab bench --json`
// under their stable names.
func TestBenchRebootJSON(t *testing.T) {
	b, err := json.Marshal(&benchResult{rebootBench: rebootBench{RebootS: 2.5, RebootRatio: 1.25}})
	if err != nil || !strings.Contains(string(b), `"reboot_s":2.5,"reboot_ratio":1.25`) {
		t.Errorf("got %s, %v; want reboot_s and reboot_ratio in it", b, err)
	}
}
