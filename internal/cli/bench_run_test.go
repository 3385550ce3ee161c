package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlab/vmlab/internal/report"
	"github.com/vmlab/vmlab/internal/vmtest"
)

// TestBenchRunNeverCached: a bench figure is of a run, so its runs ignore
// the result cache even when the user's is on: the second of two runs of
// one passing test runs it again. (The coverage example's run without
// -coverage once came from the cache: 0.15 s against 7.13 s.) Boots no
// VM: the test uses no machine.
func TestBenchRunNeverCached(t *testing.T) {
	t.Setenv("VMLAB_AGENT", vmtest.Agent(t))
	t.Setenv("VMLAB_RESULT_CACHE", t.TempDir())
	dir := t.TempDir()
	file := filepath.Join(dir, "quick.star")
	if err := os.WriteFile(file, []byte("def test():\n    pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		out := filepath.Join(dir, "out"+string(rune('1'+i)))
		var log strings.Builder
		if code := benchRun(t.Context(), &log, "-out", out, file); code != exitOK {
			t.Fatalf("run %d: exit %d\n%s", i+1, code, log.String())
		}
		f, err := os.Open(filepath.Join(out, "events.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := report.ReadEvents(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == report.TestEnd && ev.Cached {
				t.Errorf("run %d of a bench figure reported %s cached; want it run", i+1, ev.Test)
			}
		}
	}
}
