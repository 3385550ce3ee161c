package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"text/tabwriter"
)

// TestBenchSetupJSON: the figure is in `vmlab bench --json` under its
// stable name, and the files it boots with are what it says.
func TestBenchSetupJSON(t *testing.T) {
	b, err := json.Marshal(&benchResult{setupBench: setupBench{Setup1000FilesS: 0.42}})
	if err != nil || !strings.Contains(string(b), `"setup_1000_files_s":0.42`) {
		t.Errorf("got %s, %v; want setup_1000_files_s in it", b, err)
	}
	files := benchFiles(1000)
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[f.Path[:strings.LastIndexByte(f.Path, '/')]] = true
		if len(f.Content) != 100 {
			t.Fatalf("%s: %d bytes, want 100", f.Path, len(f.Content))
		}
	}
	if len(files) != 1000 || len(dirs) != 10 {
		t.Errorf("got %d files in %d directories, want 1000 in 10", len(files), len(dirs))
	}
}

// TestBenchSetupPrint: the table shows the two boots the figure comes from,
// and a difference below zero (the files cost less than the boots vary;
// a run read -0.03 s) is said as such, not as a negative time.
func TestBenchSetupPrint(t *testing.T) {
	for _, tt := range []struct {
		s    setupBench
		want string
	}{
		{setupBench{Setup1000FilesS: 0.25, SetupFilesBootS: 2.75, SetupPlainBootS: 2.5}, "added to a boot (2.75 s with, 2.50 s without)  0.25 s"},
		{setupBench{Setup1000FilesS: -0.03, SetupFilesBootS: 2.47, SetupPlainBootS: 2.5}, "added to a boot (2.47 s with, 2.50 s without)  under the boots' spread"},
	} {
		var b bytes.Buffer
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		tt.s.print(tw)
		tw.Flush()
		if got := b.String(); !strings.Contains(got, tt.want) || strings.Contains(got, "-0.") {
			t.Errorf("got %q, want %q in it and no negative figure", got, tt.want)
		}
	}
	b, _ := json.Marshal(&benchResult{setupBench: setupBench{Setup1000FilesS: -0.03, SetupFilesBootS: 2.47, SetupPlainBootS: 2.5}})
	for _, k := range []string{`"setup_files_boot_s":2.47`, `"setup_plain_boot_s":2.5`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("got %s, want %s in it", b, k)
		}
	}
}
