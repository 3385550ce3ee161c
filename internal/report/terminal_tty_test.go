package report

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlab/vmlab/internal/pty"
)

// TestTerminalFor: colour and the progress block on a terminal, following
// its size; NO_COLOR takes the colour away, TERM=dumb the block; a file
// gets plain text.
func TestTerminalFor(t *testing.T) {
	ctl, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer term.Close()
	if err := pty.SetSize(term, pty.Size{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	tests := []struct {
		name            string
		w               *os.File
		env             map[string]string
		color, progress bool
	}{
		{"a terminal", term, nil, true, true},
		{"NO_COLOR", term, map[string]string{"NO_COLOR": "1"}, false, true},
		{"NO_COLOR empty", term, map[string]string{"NO_COLOR": ""}, true, true},
		{"TERM=dumb", term, map[string]string{"TERM": "dumb"}, true, false},
		{"a file", file, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TERM", "xterm")
			t.Setenv("NO_COLOR", "") // restored after the test
			os.Unsetenv("NO_COLOR")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			opts := TerminalFor(tt.w, true)
			if opts.Color != tt.color || opts.Progress != tt.progress || !opts.Verbose {
				t.Errorf("got Color %v, Progress %v, Verbose %v; want %v, %v, true", opts.Color, opts.Progress, opts.Verbose, tt.color, tt.progress)
			}
			if !tt.progress {
				return
			}
			if cols, rows := opts.size(); cols != 100 || rows != 30 {
				t.Errorf("got size %dx%d, want 100x30", cols, rows)
			}
			pty.SetSize(term, pty.Size{Rows: 20, Cols: 60})
			defer pty.SetSize(term, pty.Size{Rows: 30, Cols: 100})
			if cols, rows := opts.size(); cols != 60 || rows != 20 {
				t.Errorf("after a resize got size %dx%d, want 60x20", cols, rows)
			}
		})
	}
}
