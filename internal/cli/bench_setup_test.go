package cli

import (
	"encoding/json"
	"strings"
	"testing"
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
