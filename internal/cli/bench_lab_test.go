package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/machine"
	"github.com/vmlab/vmlab/internal/vmtest"
)

func TestBenchLabRows(t *testing.T) {
	for _, tt := range []struct {
		name string
		l    labBench
		want []string
	}{
		{"cold", labBench{Lab16S: 25.25, Lab16MiB: 210.4, Lab16ColdS: 25.25, Lab16ColdMiB: 210.4}, []string{
			"lab of 16 machines, booted cold: start_all to the last ping in a ring 25.25 s",
			"lab of 16 machines, booted cold: host memory per machine (QEMU PSS) 210 MiB <= 100 MiB MISSED"}},
		{"cold within target", labBench{Lab16S: 9, Lab16MiB: 95, Lab16ColdS: 9, Lab16ColdMiB: 95}, []string{"(QEMU PSS) 95 MiB <= 100 MiB met"}},
		{"restored", labBench{Lab16S: 12.5, Lab16MiB: 80.4, Lab16ColdS: 51, Lab16ColdMiB: 240, Lab16RestoredS: 12.5, Lab16RestoredMiB: 80.4}, []string{
			"lab of 16 machines, restored as vmlab run starts them: start_all to the last ping in a ring 12.50 s (cold 51.00 s)",
			"lab of 16 machines, restored as vmlab run starts them: host memory per machine (QEMU PSS) 80 MiB (cold 240 MiB) <= 100 MiB met"}},
		{"restored over target", labBench{Lab16S: 30, Lab16MiB: 120, Lab16ColdS: 51, Lab16ColdMiB: 240, Lab16RestoredS: 30, Lab16RestoredMiB: 120}, []string{
			"host memory per machine (QEMU PSS) 120 MiB (cold 240 MiB) <= 100 MiB MISSED"}},
		{"skipped", labBench{}, nil},
	} {
		checkRows(t, tt.name, tt.l.print, tt.want)
	}
}

func TestBenchLabJSON(t *testing.T) {
	b, err := json.Marshal(&benchResult{labBench: labBench{Lab16S: 25.5, Lab16MiB: 210.25, Lab16ColdS: 25.5, Lab16ColdMiB: 210.25}})
	if err != nil || !strings.Contains(string(b), `"lab_16_s":25.5,"lab_16_mib":210.25,"lab_16_cold_s":25.5,"lab_16_cold_mib":210.25`) ||
		strings.Contains(string(b), "lab_16_restored") {
		t.Errorf("got %s, %v; want lab_16_s, lab_16_mib and the cold keys in it, no restored keys", b, err)
	}
	b, err = json.Marshal(&benchResult{labBench: labBench{Lab16S: 9.5, Lab16MiB: 80.5, Lab16ColdS: 25.5, Lab16ColdMiB: 210.25, Lab16RestoredS: 9.5, Lab16RestoredMiB: 80.5}})
	if err != nil || !strings.Contains(string(b), `"lab_16_s":9.5,"lab_16_mib":80.5,"lab_16_cold_s":25.5,"lab_16_cold_mib":210.25,"lab_16_restored_s":9.5,"lab_16_restored_mib":80.5`) {
		t.Errorf("got %s, %v; want every lab key in it", b, err)
	}
	if b, _ := json.Marshal(&benchResult{}); strings.Contains(string(b), "lab_16") {
		t.Errorf("got %s; want no lab keys when the section is skipped", b)
	}
}

// TestLabRunKeysDocumented: `vmlab bench -lab-only N -json` names its
// keys in docs/cli.md too.
func TestLabRunKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## `vmlab bench`")
	b, _ := json.Marshal(labRun{})
	var keys map[string]any
	json.Unmarshal(b, &keys)
	for k := range keys {
		if !strings.Contains(table, "`"+k+"`") {
			t.Errorf("lab key %s is not in docs/cli.md's `vmlab bench` section", k)
		}
	}
}

func TestParsePSS(t *testing.T) {
	rollup := "55d0c0a00000-7ffc5a5f3000 ---p 00000000 00:00 0                          [rollup]\n" +
		"Rss:              215040 kB\nPss:              180224 kB\nPss_Anon:         170000 kB\nPss_File:          10224 kB\n"
	for _, tt := range []struct {
		name, in string
		want     int64
		bad      bool
	}{
		{"rollup", rollup, 180224, false},
		{"no Pss", "Rss: 1 kB\nPss_Anon: 2 kB\n", 0, true},
		{"not a number", "Pss: lots kB\n", 0, true},
	} {
		got, err := parsePSS([]byte(tt.in))
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d (error: %v)", tt.name, got, err, tt.want, tt.bad)
		}
	}
}

// TestSumPSSSelf reads this process's own PSS: more than nothing.
func TestSumPSSSelf(t *testing.T) {
	mib, err := sumPSS([]int{os.Getpid()})
	if err != nil || mib <= 1 {
		t.Errorf("got %.1f MiB, %v; want this test process's PSS, over 1 MiB", mib, err)
	}
	if _, err := sumPSS([]int{1 << 30}); err == nil || !strings.Contains(err.Error(), "process 1073741824") {
		t.Errorf("got %v; want an error naming the missing process", err)
	}
}

// TestBenchLabVM measures a lab of 3 machines: every figure measured,
// the pings answered.
func TestBenchLabVM(t *testing.T) {
	boot := vmtest.Boot(t)
	var stderr bytes.Buffer
	r, err := measureLab(t.Context(), &env{stdout: &stderr, stderr: &stderr}, boot, 3, 256, 1, false)
	if err != nil {
		t.Fatalf("measure a lab of 3: %v\n%s", err, stderr.String())
	}
	if r.BootS <= 0 || r.S < r.BootS || r.QEMUMiB < 3*10 || r.ShutdownS <= 0 {
		t.Errorf("got %+v; want boot, pings, shutdown timed and over 10 MiB of PSS per machine", r)
	}
	t.Logf("%+v", r)
}

// TestBenchRestoredLabVM is `vmlab bench -lab-only 3 -snapshot on
// -json`: every machine restored from the snapshot the bench took first,
// in a directory of its own (none is left in the cache), the figures
// measured.
func TestBenchRestoredLabVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr}
	bf := bootFlags{memory: 256, cpus: 1}
	bf.opts.Accel, bf.opts.CacheDir, bf.opts.Snapshot = vmtest.Boot(t).Accel.Name, t.TempDir(), "on"
	if code := runLabOnly(t.Context(), e, vmtest.Boot(t), bf, 3, true, true); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	var r labRun
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	t.Logf("%+v\n%s", r, stderr.String())
	if !r.Restored || r.ColdBoots != 0 || r.SnapshotS <= 0 {
		t.Errorf("got %+v; want 3 machines restored from a snapshot taken first, none cold", r)
	}
	if r.BootS <= 0 || r.S < r.BootS || r.QEMUMiB < 3*10 || r.ShutdownS <= 0 {
		t.Errorf("got %+v; want boot, pings, shutdown timed and over 10 MiB of PSS per machine", r)
	}
	if left, err := machine.ListSnapshots(machine.SnapshotDir(bf.opts.CacheDir)); err != nil || len(left) != 0 {
		t.Errorf("the bench left snapshots in the cache: %+v, %v", left, err)
	}
}
