package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// numbered is n bytes of numbered lines: "line 0000000\n", "line 0000001\n", ...
func numbered(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %07d\n", i)
	}
	return b.String()[:n]
}

// TestBoundOutput emits commands with long outputs through a Reporter and
// checks that events.jsonl, junit.xml and report.html keep the head and the
// tail and name the file with the whole output, never all of it (1 GB of
// output made a 1.5 GB events.jsonl).
func TestBoundOutput(t *testing.T) {
	dir := t.TempDir()
	whole := numbered(3 << 20)
	file := filepath.Join(dir, "vm", "output", "command-1.stdout")
	os.MkdirAll(filepath.Dir(file), 0o700)
	if err := os.WriteFile(file, []byte(whole), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		event              Event
		wantStdout         []string // in the event's stdout as the sinks get it
		wantAbsent         []string
		wantMax            int // bytes of stdout at most
		wantCommandLongest int
	}{
		{"short output kept whole", Event{Command: "echo", Stdout: "hello\n"},
			[]string{"hello\n"}, nil, 6, 4},
		{"1 MiB kept whole", Event{Command: "big", Stdout: numbered(1 << 20)},
			[]string{numbered(1 << 20)}, []string{"left out"}, 1 << 20, 3},
		{"long output without a file", Event{Command: "big", Stdout: numbered(2 << 20)},
			[]string{"line 0000000\n", "the whole stdout is not kept", numbered(2 << 20)[2<<20-1000:]},
			[]string{"line 0080000\n"}, 2*outputEnd + 200, 3},
		{"output over the limit with its file", Event{Command: "big", Stdout: whole[:1500<<10], StdoutFile: file},
			// The tail is the file's: the event held only the first 1.5 MiB.
			[]string{"line 0000000\n", fmt.Sprintf("of %d bytes left out; the whole stdout is in %s", 3<<20, file), whole[3<<20-1000:]},
			[]string{"line 0100000\n"}, 2*outputEnd + 300, 3},
		{"long command", Event{Command: strings.Repeat("x", 1<<20), Stdout: "ok\n"},
			[]string{"ok\n"}, nil, 3, commandLimit + 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var jsonl bytes.Buffer
			rec := &recorder{}
			sub := t.TempDir()
			r := New(rec, NewJSONLines(&jsonl), NewFiles(JUnitFile(filepath.Join(sub, "junit.xml")), HTMLFile(filepath.Join(sub, "report.html"))))
			e := tt.event
			e.Kind, e.Test, e.Machine, e.Exit, e.Error = Command, "test_x", "vm", 1, "failed"
			r.Emit(Event{Kind: TestStart, Test: "test_x"})
			r.Emit(e)
			r.Emit(Event{Kind: TestEnd, Test: "test_x", Error: "failed"})
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			got := rec.events[1]
			if len(got.Stdout) > tt.wantMax || len(got.Command) > tt.wantCommandLongest {
				t.Errorf("got %d bytes of stdout and %d of command, want at most %d and %d",
					len(got.Stdout), len(got.Command), tt.wantMax, tt.wantCommandLongest)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(got.Stdout, w) {
					t.Errorf("stdout lacks %.60q", w)
				}
			}
			for _, w := range tt.wantAbsent {
				if strings.Contains(got.Stdout, w) {
					t.Errorf("stdout has %.60q, want it left out", w)
				}
			}
			// events.jsonl holds the cut event, and the file's path.
			lines := strings.Split(strings.TrimSpace(jsonl.String()), "\n")
			var logged Event
			if err := json.Unmarshal([]byte(lines[1]), &logged); err != nil || logged.Stdout != got.Stdout || logged.StdoutFile != e.StdoutFile {
				t.Errorf("events.jsonl: got %d bytes of stdout, file %q (%v); want the cut %d bytes and %q",
					len(logged.Stdout), logged.StdoutFile, err, len(got.Stdout), e.StdoutFile)
			}
			// Newlines take two bytes in JSON.
			if len(lines[1]) > 2*tt.wantMax+tt.wantCommandLongest+2000 {
				t.Errorf("events.jsonl: the command's line is %d bytes", len(lines[1]))
			}
			if e.StdoutFile == "" {
				return
			}
			html, _ := os.ReadFile(filepath.Join(sub, "report.html"))
			junit, _ := os.ReadFile(filepath.Join(sub, "junit.xml"))
			if want := `whole output: <a href="` + filepath.ToSlash(file) + `">`; !strings.Contains(string(html), want) {
				t.Errorf("report.html lacks %q", want)
			}
			if want := "the whole stdout is in " + file; !strings.Contains(string(junit), want) {
				t.Errorf("junit.xml lacks %q", want)
			}
		})
	}
}

// TestTerminalLongOutput fails a command that printed many lines: the
// terminal shows the first and last 50 and names the file with them all,
// not the thousands of lines the other reports keep.
func TestTerminalLongOutput(t *testing.T) {
	tests := []struct {
		name      string
		lines     int
		file      string
		wantLines int // lines of the output shown
		wantMark  string
	}{
		{"short", 100, "", 100, ""},
		{"long with its file", 5000, "/out/t/vm/output/command-1.stdout", 100,
			"[... 4900 lines left out; the whole stdout is in /out/t/vm/output/command-1.stdout ...]"},
		{"long without a file", 101, "", 100, "[... 1 lines left out ...]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			sink := NewTerminal(&out, TerminalOptions{})
			stdout := numbered(tt.lines * 13)
			emitAll(sink, []Event{
				{Kind: TestStart, Test: "t"},
				{Kind: Command, Test: "t", Machine: "vm", Command: "print", Exit: 1, Stdout: stdout, StdoutFile: tt.file, Error: "failed"},
				{Kind: TestEnd, Test: "t", Error: "failed"},
			})
			text := out.String()
			if got := strings.Count(text, "line 0"); got != tt.wantLines {
				t.Errorf("got %d output lines, want %d:\n%s", got, tt.wantLines, text)
			}
			if tt.wantMark != "" && !strings.Contains(text, tt.wantMark) {
				t.Errorf("output lacks %q:\n%.2000s", tt.wantMark, text)
			}
			last := fmt.Sprintf("line %07d", tt.lines-1)
			if !strings.Contains(text, last) {
				t.Errorf("output lacks its last line %q", last)
			}
		})
	}
}
