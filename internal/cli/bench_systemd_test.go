package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/vmlab/vmlab/internal/spec"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchSystemdKeys: the figures are in `vmlab bench --json` under their
// stable names, and absent when not measured.
func TestBenchSystemdKeys(t *testing.T) {
	b, err := json.Marshal(&benchResult{systemdBench: systemdBench{SystemdBootS: 5.5, SystemdBootRatio: 2.2, NFSExampleS: 61.5}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"systemd_boot_s":5.5`, `"systemd_boot_ratio":2.2`, `"nfs_example_s":61.5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("got %s; want %s in it", b, want)
		}
	}
	b, _ = json.Marshal(&benchResult{})
	if strings.Contains(string(b), "systemd_boot") || strings.Contains(string(b), "nfs_example") {
		t.Errorf("got %s; want no systemd keys when they were not measured", b)
	}
}

// TestBenchNFSExampleMissing: a missing example file is skipped with a
// note, not a failure (bench runs from any directory).
func TestBenchNFSExampleMissing(t *testing.T) {
	var s systemdBench
	var stderr bytes.Buffer
	if err := s.benchNFSExample(t.Context(), &env{stdout: &stderr, stderr: &stderr}, "no/such/nfs.star"); err != nil {
		t.Fatalf("got %v, want the missing file skipped", err)
	}
	if s.NFSExampleS != 0 || !strings.Contains(stderr.String(), "no NFS example") {
		t.Errorf("got nfs_example_s %v and %q; want 0 and a note", s.NFSExampleS, stderr.String())
	}
}

// TestBenchSystemdVM boots one systemd guest to multi-user.target.
func TestBenchSystemdVM(t *testing.T) {
	boot := vmtest.Boot(t)
	if _, err := os.Stat(spec.SystemdPath); err != nil {
		t.Skipf("the root has no systemd: %v", err)
	}
	var s systemdBench
	var stderr bytes.Buffer
	if err := s.benchSystemd(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, bootFlags{memory: 512, cpus: 1}, 1, 2); err != nil {
		t.Fatalf("bench systemd: %v\n%s", err, stderr.String())
	}
	if s.SystemdBootS <= 0 || s.SystemdBootRatio != s.SystemdBootS/2 {
		t.Errorf("got systemd_boot_s %v, ratio %v; want a time and its ratio to the floor (2 s)", s.SystemdBootS, s.SystemdBootRatio)
	}
	t.Logf("systemd_boot_s %.2f", s.SystemdBootS)
}

// TestBenchSystemdPrint: the rows say the figures and whether the targets
// (2.5x the floor, 90 s) were met; unmeasured, they are absent.
func TestBenchSystemdPrint(t *testing.T) {
	tests := []struct {
		name string
		s    systemdBench
		want []string
	}{
		{"met", systemdBench{SystemdBootS: 5, SystemdBootRatio: 2.0, NFSExampleS: 60},
			[]string{`multi-user.target") 5.00 s (2.00x floor) <= 2.5x met`, "nfs.star, wall time 60.00 s <= 90 s met"}},
		{"missed", systemdBench{SystemdBootS: 12.5, SystemdBootRatio: 5.0, NFSExampleS: 95},
			[]string{"12.50 s (5.00x floor) <= 2.5x MISSED", "95.00 s <= 90 s MISSED"}},
		{"unmeasured", systemdBench{}, nil},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		tt.s.print(tw)
		tw.Flush()
		got := strings.Join(strings.Fields(b.String()), " ") // the columns' padding aside
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: got %q, want %q in it", tt.name, b.String(), w)
			}
		}
		if tt.want == nil && b.Len() != 0 {
			t.Errorf("%s: got %q, want nothing", tt.name, b.String())
		}
	}
}
